// #/admin/offerings: compute (service) and disk offerings: list, create, delete.

import { h, table, fmtDate, fmtMiB, pageHeader, confirmAction, notify, showError } from '../core/ui.js';
import { call, listAll } from '../core/api.js';
import { route } from '../core/router.js';
import { rootOnly, tabs, formModal, wrapTable, tell } from './common.js';

const yes = (b) => (b ? 'Yes' : 'No');

const KINDS = {
  service: {
    noun: 'compute offering',
    list: 'listServiceOfferings',
    create: 'createServiceOffering',
    del: 'deleteServiceOffering',
    table: 'serviceofferings',
    columns: [
      { key: 'cpunumber', label: 'CPUs', render: (o) => (o.iscustomized && !o.cpunumber ? 'custom' : o.cpunumber) },
      { key: 'cpuspeed', label: 'Speed', render: (o) => (o.cpuspeed ? `${o.cpuspeed} MHz` : '—') },
      { key: 'memory', label: 'Memory', render: (o) => (o.memory ? fmtMiB(o.memory) : 'custom') },
      { key: 'offerha', label: 'HA', render: (o) => yes(o.offerha) },
      { key: 'storagetype', label: 'Storage' },
      { key: 'hosttags', label: 'Host tags' },
    ],
    fields: () => [
      { label: 'Name', name: 'name', required: true },
      { label: 'Description', name: 'displaytext', required: true },
      { label: 'CPUs', name: 'cpunumber', type: 'number', required: true, min: 1, max: 256, value: 1 },
      { label: 'CPU speed (MHz)', name: 'cpuspeed', type: 'number', required: true, min: 100, max: 100000, value: 1000 },
      { label: 'Memory (MiB)', name: 'memory', type: 'number', required: true, min: 32, max: 4194304, value: 1024 },
      { label: 'Storage type', name: 'storagetype', type: 'select', options: ['shared', 'local'], value: 'shared' },
      { label: 'Host tags', name: 'hosttags', help: 'Optional: only hosts with these tags (comma separated) take VMs of this offering.' },
      { label: 'Offer HA: restart its VMs elsewhere when their host fails', name: 'offerha', type: 'checkbox' },
    ],
  },
  disk: {
    noun: 'disk offering',
    list: 'listDiskOfferings',
    create: 'createDiskOffering',
    del: 'deleteDiskOffering',
    table: 'diskofferings',
    columns: [
      { key: 'disksize', label: 'Size', render: (o) => (o.iscustomized ? 'custom' : o.disksize ? `${o.disksize} GiB` : '—'), sortValue: (o) => Number(o.disksize) || 0 },
      { key: 'storagetype', label: 'Storage' },
      { key: 'provisioningtype', label: 'Provisioning' },
      { key: 'tags', label: 'Storage tags' },
    ],
    fields: () => [
      { label: 'Name', name: 'name', required: true },
      { label: 'Description', name: 'displaytext', required: true },
      { label: 'Size (GiB)', name: 'disksize', type: 'number', min: 1, max: 65536, value: 10, help: 'Leave empty with "custom size" checked to let users choose.' },
      { label: 'Custom size: users choose it', name: 'customized', type: 'checkbox' },
      { label: 'Storage type', name: 'storagetype', type: 'select', options: ['shared', 'local'], value: 'shared' },
      { label: 'Provisioning', name: 'provisioningtype', type: 'select', options: ['thin', 'sparse', 'fat'], value: 'thin' },
      { label: 'Storage tags', name: 'tags', help: 'Optional: only pools with these tags hold its volumes.' },
    ],
    check: (v) => (!v.customized && !v.disksize ? { disksize: 'Give a size, or check "custom size".' } : {}),
  },
};

function panel(kind, box) {
  const k = KINDS[kind];
  const listBox = h('div');
  const create = h('button', { type: 'button', class: 'btn btn-primary', 'data-action': `create-${kind}` }, `New ${k.noun}`);
  box.replaceChildren(h('div', { class: 'toolbar toolbar-end' }, create), listBox);

  const load = async () => {
    listBox.replaceChildren(h('p', { class: 'muted' }, 'Loading…'));
    let rows;
    try {
      rows = await listAll(k.list, { listall: true });
    } catch (err) {
      listBox.replaceChildren(h('p', { class: 'muted' }, `The ${k.noun}s could not be listed.`));
      showError(err);
      return;
    }
    listBox.replaceChildren(wrapTable(table({
      name: k.table, rows, empty: `No ${k.noun}s yet.`,
      columns: [
        { key: 'name', label: 'Name', render: (o) => h('span', {}, h('span', { class: 'cell-name' }, o.name), h('span', { class: 'cell-sub' }, o.displaytext || '')) },
        ...k.columns,
        { key: 'created', label: 'Created', render: (o) => fmtDate(o.created) },
        { key: 'actions', label: '', sortable: false, render: (o) => h('button', { type: 'button', class: 'btn btn-sm btn-danger', 'data-action': 'delete', 'aria-label': `Delete ${o.name}`, onclick: () => remove(o) }, 'Delete') },
      ],
    })));
  };

  async function remove(o) {
    if (!await confirmAction({ title: `Delete ${k.noun} ${o.name}?`, text: 'Users cannot choose it any more. It is refused while something still refers to it.', confirm: 'Delete' })) return;
    await tell(k.del, { id: o.id }, `${o.name} deleted.`);
    load();
  }

  create.addEventListener('click', async () => {
    const r = await formModal({
      title: `New ${k.noun}`, submit: 'Create', action: `create-${kind}-submit`, fields: k.fields(), check: k.check,
      onSubmit: (v) => {
        const params = { ...v };
        if (kind === 'disk' && v.customized) delete params.disksize;
        if (kind === 'service') params.offerha = v.offerha;
        return call(k.create, params);
      },
    });
    if (r) {
      notify(`${k.noun[0].toUpperCase()}${k.noun.slice(1)} created.`);
      load();
    }
  });
  return load();
}

route('/admin/offerings', {
  title: 'Offerings',
  section: 'admin',
  nav: 'Offerings',
  adminOnly: true,
  rootOnly: true,
  async render(el, params, query) {
    if (!rootOnly(el, 'Offerings')) return;
    const t = tabs([{ key: 'service', label: 'Compute offerings' }, { key: 'disk', label: 'Disk offerings' }],
      (key, box) => panel(key, box), query.get('tab') === 'disk' ? 'disk' : 'service');
    el.replaceChildren(pageHeader('Offerings'),
      h('p', { class: 'page-sub' }, 'What users may pick when they deploy a VM (compute) or add a volume (disk).'), t.el);
  },
});
