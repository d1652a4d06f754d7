import { h, pageHeader } from '../core/ui.js';
import { route } from '../core/router.js';

route('/deploy', {
  title: 'Deploy a virtual machine',

  async render(el) {
    el.replaceChildren(pageHeader('Deploy a virtual machine'), h('p', {}, 'Coming shortly.'));
  },
});
