import { h, pageHeader } from '../core/ui.js';
import { route } from '../core/router.js';

route('/keys', {
  title: 'API keys',
  nav: 'API keys',
  async render(el) {
    el.replaceChildren(pageHeader('API keys'), h('p', {}, 'Coming shortly.'));
  },
});
