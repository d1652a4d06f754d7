// Snapshots (#/snapshots): list, revert, delete.

import { h, pageHeader, badge, fmtBytes, fmtDate } from '../core/ui.js';
import { session } from '../core/api.js';
import { route } from '../core/router.js';
import { listView, runJob } from './common.js';

route('/snapshots', {
  title: 'Snapshots',
  nav: 'Snapshots',
  async render(el) {
    const s = session();
    const jobs = h('div', { class: 'jobs-inline' });
    const body = h('div');
    let view;
    const actions = (sn) => h('div', { class: 'btn-group' },
      h('button', { type: 'button', class: 'btn btn-sm', 'data-action': 'revert', disabled: sn.state !== 'BackedUp' || sn.revertable === false, onclick: async () => {
        const r = await runJob(jobs, `Reverting ${sn.volumename} to ${sn.name}`, 'revertSnapshot', { id: sn.id }, { success: `${sn.volumename} reverted to ${sn.name}.`,
          confirm: { title: `Revert ${sn.volumename}?`, text: `The volume goes back to snapshot ${sn.name}; changes made since are lost. Its VM must be stopped.`, confirm: 'Revert' } });
        if (r) view.reload();
      } }, 'Revert'),
      h('button', { type: 'button', class: 'btn btn-sm btn-danger', 'data-action': 'delete', onclick: async () => {
        const r = await runJob(jobs, `Deleting ${sn.name}`, 'deleteSnapshot', { id: sn.id }, { success: `Snapshot ${sn.name} deleted.`,
          confirm: { title: `Delete snapshot ${sn.name}?`, text: 'The snapshot is deleted for good.', confirm: 'Delete' } });
        if (r) view.reload();
      } }, 'Delete'));
    el.replaceChildren(pageHeader('Snapshots'), jobs, body);
    view = listView(body, {
      name: 'snapshots',
      command: 'listSnapshots',
      params: () => (s && s.isAdmin ? { listall: true } : {}),
      columns: [
        { key: 'name', label: 'Name', render: (sn) => h('span', { class: 'cell-name' }, sn.name) },
        { key: 'state', label: 'State', render: (sn) => badge(sn.state) },
        { key: 'volumename', label: 'Volume', render: (sn) => [sn.volumename || '', h('span', { class: 'cell-sub' }, sn.volumetype || '')] },
        { key: 'virtualsize', label: 'Size', render: (sn) => fmtBytes(sn.virtualsize || sn.physicalsize), sortValue: (sn) => Number(sn.virtualsize) },
        s && s.isAdmin ? { key: 'account', label: 'Account' } : null,
        { key: 'created', label: 'Created', render: (sn) => fmtDate(sn.created) },
        { key: 'actions', label: 'Actions', sortable: false, render: actions },
      ].filter(Boolean),
      empty: 'No snapshots. Take one from a volume on the Volumes page.',
    });
  },
});
