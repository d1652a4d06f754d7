import { h, pageHeader } from '../core/ui.js';
import { route } from '../core/router.js';

route('/jobs', {
  title: 'Async jobs',
  nav: 'Jobs',
  async render(el) {
    el.replaceChildren(pageHeader('Async jobs'), h('p', {}, 'Coming shortly.'));
  },
});
