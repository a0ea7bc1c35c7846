'use strict';
// Live progress of running imports: every element with data-import-progress polls its JSON
// endpoint once a second and updates its status, bar and counts, until the import finishes.
{
    const POLL_MS = 1000;
    // Counts as the page writes them: in the page's language (1,234 in English, 1 234 in Russian).
    const pageLanguage = document.documentElement.lang || undefined;
    const formatCount = (n) => n.toLocaleString(pageLanguage);

    const update = (element, data) => {
        const status = element.querySelector('[data-field="status"]');
        if (status) {
            status.textContent = data.status_display;
            status.className = 'import-status import-status-' + data.status;
        }
        // "Waiting for a worker" is said only while the job is queued: one status, one place.
        const waiting = element.querySelector('[data-field="waiting"]');
        if (waiting && data.status !== 'queued') {
            waiting.remove();
        }
        const bar = element.querySelector('progress');
        if (bar) {
            bar.value = data.percent;
            bar.textContent = data.percent + '%';
        }
        const percent = element.querySelector('[data-field="percent"]');
        if (percent) {
            percent.textContent = data.percent + '%';
        }
        for (const field of ['codes_added', 'rows_rejected']) {
            const cell = element.querySelector('[data-field="' + field + '"]');
            if (cell) {
                cell.textContent = formatCount(data[field]);
            }
        }
    };

    const watch = (element) => {
        const poll = async () => {
            try {
                const response = await fetch(element.dataset.importProgress, {
                    headers: {'Accept': 'application/json'}, credentials: 'same-origin',
                });
                if (response.ok) {
                    const data = await response.json();
                    update(element, data);
                    if (data.finished) {
                        element.removeAttribute('data-import-progress');
                        if (element.hasAttribute('data-reload-when-finished')) {
                            window.location.reload();
                        }
                        return;
                    }
                }
            } catch (error) {
                // The next poll tries again.
            }
            setTimeout(poll, POLL_MS);
        };
        setTimeout(poll, POLL_MS);
    };

    window.addEventListener('load', () => {
        document.querySelectorAll('[data-import-progress]').forEach(watch);
    });
}
