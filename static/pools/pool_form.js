'use strict';
// The pool form's conveniences while the manager types; the server enforces every rule
// (Pool.clean and the database constraints), this only shows them early.
// - The pool ID is suggested from the description's first few telling words, and the template
//   parameter from the pool ID (SPRING_SALE for spring-sale), until the manager edits them:
//   pools/services.py slug_from_description and template_parameter_from_slug are the same rules.
// - The usage rules answer at once: the two exclusive options disable each other with a one-line
//   reason; the validity period and the notification amount are enabled exactly when needed;
//   choosing external processing says what it changes.
// Its sentences come from the page (#pool-form-texts, translated by the server).
{
    const SLUG_WORDS = 3;
    const SLUG_MAX_LENGTH = 30;
    const SKIPPED = new Set((
        'a an and are as asked at be because by for from has have in into is it its need needed ' +
        'of on or our so that the their them these they this those to us was we were which who ' +
        'why will with want wanted you your created create pool pools'
    ).split(' '));

    const slugify = (text) => text.normalize('NFKD').replace(/[\u0300-\u036f]/g, '')
        .replace(/[^\x00-\x7F]/g, '').toLowerCase().replace(/[^\w\s-]/g, '')
        .replace(/[-\s]+/g, '-').replace(/^[-_]+|[-_]+$/g, '');

    const slugFromDescription = (description) => {
        const words = slugify(description).split('-').filter((w) => w);
        let telling = words.filter((w) => !SKIPPED.has(w));
        if (!telling.length) {
            telling = words;
        }
        let slug = '';
        for (const word of telling.slice(0, SLUG_WORDS)) {
            const candidate = slug ? slug + '-' + word : word;
            if (candidate.length > SLUG_MAX_LENGTH) {
                break;
            }
            slug = candidate;
        }
        if (!slug && telling.length) {
            slug = telling[0].slice(0, SLUG_MAX_LENGTH).replace(/^[-_]+|[-_]+$/g, '');
        }
        return slug;
    };

    const toParameter = (slug) => {
        const name = slug.replace(/[^A-Za-z0-9_]/g, '_').toUpperCase();
        return name && !/^[0-9]/.test(name) ? name : 'P_' + name;
    };

    const byId = (id) => document.getElementById(id);

    const suggestNames = () => {
        const description = byId('id_description');
        const slug = byId('id_slug');
        const parameter = byId('id_template_parameter');
        if (!slug) {
            return;
        }
        // A value is the manager's own unless it is what the page would have filled in: after a
        // refused launch the page comes back with the values filled in before, or (saved with
        // no description) with the pool ID the server chose, which it marks data-automatic.
        const automatic = (field, suggested) => field.value === '' || field.value === suggested
            || field.dataset.automatic !== undefined;
        let slugByHand = !automatic(slug, description ? slugFromDescription(description.value) : '');
        let parameterByHand = parameter ? !automatic(parameter, toParameter(slug.value)) : true;
        const fillParameter = () => {
            if (parameter && !parameterByHand) {
                parameter.value = slug.value ? toParameter(slug.value) : '';
            }
        };
        slug.addEventListener('input', () => {
            slugByHand = slug.value !== '';
            fillParameter();
        });
        if (parameter) {
            parameter.addEventListener('input', () => { parameterByHand = parameter.value !== ''; });
        }
        if (description) {
            description.addEventListener('input', () => {
                if (!slugByHand) {
                    slug.value = slugFromDescription(description.value);
                    fillParameter();
                }
            });
        }
    };

    // One line under a field saying why it is disabled or what a choice changes.
    const note = (field, id) => {
        let line = byId(id);
        if (!line) {
            line = document.createElement('p');
            line.id = id;
            line.className = 'help rule-reason';
            line.setAttribute('aria-live', 'polite');
            const row = field.closest('.form-row, .fieldBox') || field.parentElement;
            row.appendChild(line);
            const described = field.getAttribute('aria-describedby');
            field.setAttribute('aria-describedby', described ? described + ' ' + id : id);
        }
        return line;
    };
    const say = (field, id, text) => {
        const line = note(field, id);
        line.textContent = text;
        line.hidden = !text;
    };

    const text = (name) => {
        const texts = byId('pool-form-texts');
        return (texts && texts.dataset[name]) || '';
    };

    const usageRules = () => {
        const issueCheck = byId('id_require_issue_before_redeem');
        const multipleUse = byId('id_allow_multiple_use');
        const validity = byId('id_issued_validity_days');
        const notify = byId('id_notify_below_enabled');
        const amount = byId('id_notify_below');
        const processing = Array.from(document.querySelectorAll('input[name="processing"]'));

        const apply = () => {
            if (issueCheck && multipleUse) {
                const both = issueCheck.checked && multipleUse.checked;
                multipleUse.disabled = issueCheck.checked && !both;
                issueCheck.disabled = multipleUse.checked && !both;
                say(multipleUse, 'multiple-use-reason', multipleUse.disabled
                    ? text('multipleUseOff')
                    : (both ? text('exclusiveBoth') : ''));
                say(issueCheck, 'issue-check-reason', issueCheck.disabled
                    ? text('issueCheckOff')
                    : '');
            }
            if (validity) {
                const needed = issueCheck ? issueCheck.checked : true;
                validity.disabled = !needed;
                validity.required = needed;
                say(validity, 'validity-reason', needed ? '' : text('validityNotNeeded'));
            }
            if (notify && amount) {
                amount.disabled = !notify.checked;
                amount.required = notify.checked;
            }
            const chosen = processing.find((radio) => radio.checked);
            if (chosen) {
                say(processing[processing.length - 1], 'processing-effect', chosen.value === 'external'
                    ? text('processingExternal')
                    : text('processingInternal'));
            }
        };
        for (const field of [issueCheck, multipleUse, notify, ...processing]) {
            if (field) {
                field.addEventListener('change', apply);
            }
        }
        apply();
    };

    window.addEventListener('DOMContentLoaded', () => {
        suggestNames();
        usageRules();
    });
}
