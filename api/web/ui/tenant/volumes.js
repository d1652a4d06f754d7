// Volumes (#/volumes): list, create, attach, detach, resize, snapshot, delete.

import { h, pageHeader, badge, fmtBytes, fmtDate, formDialog, showError } from '../core/ui.js';
import { call, session, listAll } from '../core/api.js';
import { route } from '../core/router.js';
import { listView, runJob, runSync, link } from './common.js';

route('/volumes', {
  title: 'Volumes',
  nav: 'Volumes',
  async render(el, params, query) {
    const s = session();
    const jobs = h('div', { class: 'jobs-inline' });
    const body = h('div');
    const admin = s && s.isAdmin ? { listall: true } : {};
    let view;

    async function create() {
      let zones;
      let disks;
      try {
        [zones, disks] = await Promise.all([call('listZones'), call('listDiskOfferings')]);
      } catch (err) {
        showError(err);
        return;
      }
      if (!disks.diskoffering.length) {
        showError({ text: 'There is no disk offering to create a volume from; an operator has to add one.', command: 'listDiskOfferings' });
        return;
      }
      const v = await formDialog({
        title: 'Create a volume',
        submit: 'Create volume',
        fields: [
          { label: 'Name', name: 'name', required: true, placeholder: 'data-01' },
          { label: 'Zone', name: 'zoneid', type: 'select', required: true, options: zones.zone.map((z) => ({ value: z.id, label: z.name })) },
          { label: 'Disk offering', name: 'diskofferingid', type: 'select', required: true, options: disks.diskoffering.map((d) => ({ value: d.id, label: d.iscustomized || !d.disksize ? `${d.name} (custom size)` : `${d.name} (${d.disksize} GiB)` })) },
          { label: 'Size (GiB)', name: 'size', type: 'number', min: 1, max: 65536, help: 'Only for a custom-size offering.' },
        ],
        check: (x) => {
          const d = disks.diskoffering.find((o) => o.id === x.diskofferingid);
          return d && d.iscustomized && !x.size ? { size: 'This offering needs a size.' } : {};
        },
      });
      if (!v) return;
      const d = disks.diskoffering.find((o) => o.id === v.diskofferingid);
      const r = await runJob(jobs, `Creating volume ${v.name}`, 'createVolume', { name: v.name, zoneid: v.zoneid, diskofferingid: v.diskofferingid, size: d && d.iscustomized ? v.size : undefined }, { success: `Volume ${v.name} created.` });
      if (r) view.reload();
    }

    async function attach(vol) {
      let vms;
      try {
        vms = (await listAll('listVirtualMachines', { zoneid: vol.zoneid, ...admin })).filter((x) => ['Running', 'Stopped'].includes(x.state) && (!s.isAdmin || x.account === vol.account));
      } catch (err) {
        showError(err);
        return;
      }
      if (!vms.length) {
        showError({ text: `There is no Running or Stopped VM in zone ${vol.zonename} to attach ${vol.name} to.`, command: 'attachVolume' });
        return;
      }
      const v = await formDialog({
        title: `Attach ${vol.name}`,
        text: 'The disk is added to the VM; a running VM sees it after its next start.',
        submit: 'Attach',
        fields: [{ label: 'Virtual machine', name: 'virtualmachineid', type: 'select', required: true, options: vms.map((x) => ({ value: x.id, label: `${x.name} (${x.state})` })) }],
      });
      if (!v) return;
      const r = await runJob(jobs, `Attaching ${vol.name}`, 'attachVolume', { id: vol.id, virtualmachineid: v.virtualmachineid }, { success: `${vol.name} attached.` });
      if (r) view.reload();
    }

    async function resize(vol) {
      const cur = Math.ceil(Number(vol.size) / 2 ** 30);
      const v = await formDialog({
        title: `Resize ${vol.name}`,
        text: `Volumes can only grow. It is ${cur} GiB now.`,
        submit: 'Resize',
        fields: [{ label: 'New size (GiB)', name: 'size', type: 'number', required: true, min: cur + 1, max: 65536, value: cur + 10 }],
      });
      if (!v) return;
      const r = await runJob(jobs, `Resizing ${vol.name}`, 'resizeVolume', { id: vol.id, size: v.size }, { success: `${vol.name} is now ${v.size} GiB.` });
      if (r) view.reload();
    }

    async function snapshot(vol) {
      const v = await formDialog({
        title: `Snapshot ${vol.name}`,
        submit: 'Take snapshot',
        fields: [{ label: 'Snapshot name', name: 'name', placeholder: 'Optional' }],
      });
      if (!v) return;
      await runJob(jobs, `Snapshot of ${vol.name}`, 'createSnapshot', { volumeid: vol.id, name: v.name || undefined }, { success: `Snapshot of ${vol.name} taken; see Snapshots.` });
    }

    function actions(vol) {
      const b = (label, action, fn, kind = '') => h('button', { type: 'button', class: `btn btn-sm ${kind}`, 'data-action': action, onclick: () => fn(vol) }, label);
      const out = [];
      if (vol.type === 'DATADISK' && !vol.virtualmachineid) out.push(b('Attach', 'attach', attach));
      if (vol.type === 'DATADISK' && vol.virtualmachineid) {
        out.push(b('Detach', 'detach', async () => {
          const r = await runJob(jobs, `Detaching ${vol.name}`, 'detachVolume', { id: vol.id }, { success: `${vol.name} detached.`, confirm: { title: `Detach ${vol.name}?`, text: `It is removed from ${vol.vmname} at the VM's next start; its data stays.`, confirm: 'Detach' } });
          if (r) view.reload();
        }));
      }
      out.push(b('Snapshot', 'snapshot', snapshot));
      out.push(b('Resize', 'resize', resize));
      if (vol.type === 'DATADISK' && !vol.virtualmachineid) {
        out.push(b('Delete', 'delete', async (x) => {
          const r = await runSync(null, 'deleteVolume', { id: x.id }, { success: `${x.name} deleted.`, confirm: { title: `Delete ${x.name}?`, text: 'The volume and its data are deleted. Its snapshots stay.', confirm: 'Delete' } });
          if (r) view.reload();
        }, 'btn-danger'));
      }
      return h('div', { class: 'btn-group' }, out);
    }

    el.replaceChildren(pageHeader('Volumes', h('button', { type: 'button', class: 'btn btn-primary', 'data-action': 'create-volume', onclick: create }, '+ Create volume')), jobs, body);
    view = listView(body, {
      name: 'volumes',
      command: 'listVolumes',
      params: () => ({ ...admin, id: query.get('id') || undefined, virtualmachineid: query.get('virtualmachineid') || undefined }),
      filters: [{ name: 'type', label: 'Type', options: ['ROOT', 'DATADISK'] }],
      columns: [
        { key: 'name', label: 'Name', render: (v) => [h('span', { class: 'cell-name' }, v.name), h('span', { class: 'cell-sub' }, v.diskofferingname || v.templatename || '')] },
        { key: 'type', label: 'Type' },
        { key: 'state', label: 'State', render: (v) => badge(v.state) },
        { key: 'size', label: 'Size', render: (v) => fmtBytes(v.size), sortValue: (v) => Number(v.size) },
        { key: 'vmname', label: 'Attached to', render: (v) => (v.virtualmachineid ? link(`#/vms/${encodeURIComponent(v.virtualmachineid)}`, v.vmname || v.virtualmachineid, v.deviceid !== undefined ? `device ${v.deviceid}` : '') : h('span', { class: 'muted' }, 'not attached')) },
        { key: 'zonename', label: 'Zone' },
        s && s.isAdmin ? { key: 'account', label: 'Account' } : null,
        { key: 'created', label: 'Created', render: (v) => fmtDate(v.created) },
        { key: 'actions', label: 'Actions', sortable: false, render: actions },
      ].filter(Boolean),
      empty: 'No volumes. Each VM has a root volume; create data volumes here.',
    });
    if (query.get('id')) body.prepend(h('p', { class: 'muted' }, 'Showing one volume. ', h('a', { href: '#/volumes' }, 'Show all volumes.')));
  },
});
