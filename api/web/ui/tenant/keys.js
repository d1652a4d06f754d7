// The signed-in user's API keys (#/keys): show, reveal, copy, regenerate.

import { h, pageHeader, card, kv, showError, notify, confirmAction, emptyState, loading } from '../core/ui.js';
import { call, session } from '../core/api.js';
import { route } from '../core/router.js';

function copyButton(text, what) {
  return h('button', { type: 'button', class: 'btn btn-sm', 'data-action': `copy-${what}`, onclick: async () => {
    try {
      await navigator.clipboard.writeText(text);
      notify(`${what === 'apikey' ? 'API key' : 'Secret key'} copied.`);
    } catch {
      notify('Copying is not allowed here; select the text and copy it.');
    }
  } }, 'Copy');
}

route('/keys', {
  title: 'API keys',
  nav: 'API keys',
  async render(el) {
    const s = session();
    const body = h('div', {}, loading());
    let keys = null;

    function show() {
      if (!keys || !keys.apikey) {
        body.replaceChildren(card(null, emptyState('You have no API keys yet. Generate a pair to use the API from scripts, cmk or Terraform.',
          h('button', { type: 'button', class: 'btn btn-primary', 'data-action': 'generate-keys', onclick: generate }, 'Generate keys'))));
        return;
      }
      const secret = h('code', { class: 'secret', 'data-field': 'secretkey' }, '•'.repeat(24));
      let shown = false;
      const reveal = h('button', { type: 'button', class: 'btn btn-sm', 'data-action': 'reveal-secret', 'aria-pressed': 'false', onclick: () => {
        shown = !shown;
        secret.textContent = shown ? keys.secretkey : '•'.repeat(24);
        reveal.textContent = shown ? 'Hide' : 'Reveal';
        reveal.setAttribute('aria-pressed', String(shown));
      } }, 'Reveal');
      body.replaceChildren(
        card('Your key pair', kv([
          ['User', `${s.username} (${s.account})`],
          ['API key', h('div', { class: 'row' }, h('code', { class: 'secret', 'data-field': 'apikey' }, keys.apikey), copyButton(keys.apikey, 'apikey'))],
          ['Secret key', h('div', { class: 'row' }, secret, reveal, copyButton(keys.secretkey, 'secretkey'))],
        ]), h('p', { class: 'field-help' }, 'Requests signed with these keys act as you. Keep the secret key private; anyone holding it can use your account.')),
        card('Regenerate', h('p', {}, 'A new pair replaces the current one at once: scripts using the old keys stop working.'),
          h('button', { type: 'button', class: 'btn btn-danger', 'data-action': 'generate-keys', onclick: generate }, 'Generate new keys')));
    }

    async function generate() {
      if (keys && keys.apikey && !(await confirmAction({ title: 'Replace your API keys?', text: 'The current keys stop working immediately.', confirm: 'Generate new keys' }))) return;
      try {
        const r = await call('registerUserKeys', { id: s.userid });
        keys = r.userkeys || r;
        notify('New API keys generated.');
        show();
      } catch (err) {
        showError(err);
      }
    }

    el.replaceChildren(pageHeader('API keys'), body);
    const r = await call('getUserKeys', { id: s.userid });
    keys = r.userkeys || null;
    show();
  },
});
