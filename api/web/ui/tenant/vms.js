import { h, pageHeader } from '../core/ui.js';
import { route } from '../core/router.js';

route('/vms', {
  title: 'Virtual machines',
  nav: 'Instances',
  async render(el) {
    el.replaceChildren(pageHeader('Virtual machines'), h('p', {}, 'Coming shortly.'));
  },
});
