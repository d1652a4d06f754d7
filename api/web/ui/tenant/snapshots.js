import { h, pageHeader } from '../core/ui.js';
import { route } from '../core/router.js';

route('/snapshots', {
  title: 'Snapshots',
  nav: 'Snapshots',
  async render(el) {
    el.replaceChildren(pageHeader('Snapshots'), h('p', {}, 'Coming shortly.'));
  },
});
