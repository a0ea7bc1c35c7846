'use strict';
// Suggest the template parameter from the pool ID while the user types (SPRING_SALE for
// spring-sale), until the user edits it; pools/services.py template_parameter_from_slug is the
// same rule on the server.
{
    const toParameter = (slug) => {
        const name = slug.replace(/[^A-Za-z0-9_]/g, '_').toUpperCase();
        return name && !/^[0-9]/.test(name) ? name : 'P_' + name;
    };
    window.addEventListener('load', () => {
        const slug = document.getElementById('id_slug');
        const parameter = document.getElementById('id_template_parameter');
        if (!slug || !parameter) {
            return;
        }
        let editedByHand = parameter.value !== '';
        parameter.addEventListener('input', () => { editedByHand = parameter.value !== ''; });
        // Runs after Django's prepopulate.js has filled the pool ID from the description.
        const suggest = () => setTimeout(() => {
            if (!editedByHand) {
                parameter.value = slug.value ? toParameter(slug.value) : '';
            }
        }, 0);
        const description = document.getElementById('id_description');
        for (const field of [slug, description]) {
            if (field) {
                for (const event of ['input', 'keyup', 'change']) {
                    field.addEventListener(event, suggest);
                }
            }
        }
    });
}
