import { h, pageHeader } from '../core/ui.js';
import { route } from '../core/router.js';

route('/volumes', {
  title: 'Volumes',
  nav: 'Volumes',
  async render(el) {
    el.replaceChildren(pageHeader('Volumes'), h('p', {}, 'Coming shortly.'));
  },
});
