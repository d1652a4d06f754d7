// The sign-in page (#/login).

import { h, field, showError, validate, formValues } from './ui.js';
import { login } from './api.js';
import { route, go } from './router.js';

route('/login', {
  title: 'Sign in',
  section: 'public',
  async render(el, params, query) {
    const alerts = h('div', { class: 'login-alerts' });
    const user = field({ label: 'Username', name: 'username', required: true, autocomplete: 'username', id: 'login-username' });
    const pass = field({ label: 'Password', name: 'password', type: 'password', required: true, autocomplete: 'current-password', id: 'login-password' });
    const dom = field({ label: 'Domain', name: 'domain', id: 'login-domain', placeholder: 'ROOT', help: 'Leave empty for the ROOT domain, or give a path such as /eng/web.' });
    const submit = h('button', { type: 'submit', id: 'login-submit', class: 'btn btn-primary btn-block', 'data-action': 'login' }, 'Sign in');
    const form = h('form', { class: 'login-form', novalidate: true, 'aria-labelledby': 'login-title' }, alerts, user, pass, dom, submit);
    if (query.get('expired')) {
      alerts.appendChild(h('div', { class: 'alert alert-info', role: 'status' }, 'Your session ended. Sign in again to continue.'));
    }
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      alerts.replaceChildren();
      if (!validate(form)) return;
      const v = formValues(form);
      submit.disabled = true;
      submit.textContent = 'Signing in…';
      try {
        await login(v.username, form.querySelector('[name=password]').value, v.domain);
        const next = query.get('next') || '';
        go(next.startsWith('/') && !next.startsWith('/login') ? `#${next}` : '#/vms');
      } catch (err) {
        showError(err, alerts);
        submit.disabled = false;
        submit.textContent = 'Sign in';
        pass.control.select();
        pass.control.focus();
      }
    });
    el.replaceChildren(h('div', { class: 'login-wrap' },
      h('div', { class: 'login-card' },
        h('div', { class: 'login-brand' }, h('img', { src: '/ui/favicon.svg', alt: '', width: 40, height: 40 }), h('span', {}, 'Stratus')),
        h('h1', { id: 'login-title', tabindex: '-1' }, 'Sign in to the console'),
        form),
      h('p', { class: 'login-foot muted' }, 'Stratus cloud management · CloudStack API compatible')));
    setTimeout(() => user.control.focus(), 0);
  },
});
