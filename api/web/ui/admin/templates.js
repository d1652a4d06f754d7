// #/admin/templates: every template of the cloud with its download status
// per zone; register one by URL; delete.

import { h, table, badge, fmtBytes, fmtDate, pageHeader, confirmAction, notify, capacityBar } from '../core/ui.js';
import { call, listAll } from '../core/api.js';
import { route } from '../core/router.js';
import { poll, runJob, jobsArea, formModal, wrapTable, updatedLine, refresher } from './common.js';

const FORMATS = ['QCOW2', 'RAW', 'VHD', 'VMDK'];

// downloadState reads CloudStack's status text: "Download Complete",
// "35% Downloaded", "Installing Template", "Not Downloaded", an error text.
export function downloadState(t) {
  const s = String(t.status || '');
  const m = /^(\d+)% Downloaded/.exec(s);
  if (t.isready || s === 'Download Complete') return { label: 'Ready', pct: 100, tone: 'Ready' };
  if (m) return { label: s, pct: Number(m[1]), tone: 'Copying' };
  if (s === 'Installing Template') return { label: s, pct: 100, tone: 'Copying' };
  if (s === '' || s === 'Not Downloaded') return { label: 'Waiting for download', pct: 0, tone: 'Pending' };
  return { label: s, pct: 0, tone: 'Error', failed: true };
}

function statusCell(t) {
  const d = downloadState(t);
  return h('div', { class: 'dl-status' },
    h('div', { class: 'dl-head' }, badge(d.tone === 'Ready' ? 'Ready' : d.failed ? 'Failed' : 'Downloading'),
      d.tone === 'Ready' ? null : h('span', { class: `dl-text${d.failed ? ' dl-error' : ''}` }, d.label)),
    d.tone === 'Copying' || (d.tone === 'Pending') ? capacityBar(d.pct, 100, `Download of ${t.name}`) : null);
}

route('/admin/templates', {
  title: 'Templates',
  section: 'admin',
  nav: 'Templates',
  adminOnly: true,
  async render(el) {
    const upd = updatedLine();
    const jobs = jobsArea();
    const notice = h('div', { class: 'refresh-notice' });
    const listBox = h('div');
    const filter = h('input', { type: 'search', class: 'control search', name: 'keyword', placeholder: 'Filter by name', 'aria-label': 'Filter templates by name' });
    const register = h('button', { type: 'button', class: 'btn btn-primary', 'data-action': 'register' }, 'Register template');
    el.replaceChildren(pageHeader('Templates', upd.el, register),
      h('p', { class: 'page-sub' }, 'Disk images VMs are made from, one row per zone copy. A new template is fetched from its URL onto the zone\'s secondary storage; VMs can use it once it is ready.'),
      notice, jobs, h('div', { class: 'toolbar' }, filter), listBox);

    let rows = null;
    let zones = [];
    let ostypes = [];
    const draw = () => {
      const kw = filter.value.trim().toLowerCase();
      const shown = rows.filter((t) => !kw || `${t.name} ${t.displaytext || ''}`.toLowerCase().includes(kw));
      listBox.replaceChildren(wrapTable(table({
        name: 'templates', rows: shown, rowId: (t) => `${t.id}:${t.zoneid || ''}`,
        empty: rows.length ? 'No template matches the filter.' : 'No templates yet: register one by URL.',
        columns: [
          { key: 'name', label: 'Name', render: (t) => h('span', {}, h('span', { class: 'cell-name' }, t.name), h('span', { class: 'cell-sub' }, t.displaytext || '')) },
          { key: 'status', label: 'Status', sortValue: (t) => downloadState(t).pct, render: statusCell },
          { key: 'zonename', label: 'Zone' },
          { key: 'ostypename', label: 'OS type' },
          // The format under the size keeps the table within a laptop's width.
          { key: 'size', label: 'Size', sortValue: (t) => Number(t.size) || 0, render: (t) => [t.size ? fmtBytes(t.size) : '—', t.format ? h('span', { class: 'cell-sub' }, t.format) : null] },
          { key: 'visibility', label: 'Visibility', render: (t) => [t.ispublic ? 'Public' : 'Private', t.isfeatured ? ', featured' : ''].join('') },
          { key: 'account', label: 'Owner', render: (t) => `${t.account || ''}${t.domain ? ` (${t.domain})` : ''}` },
          { key: 'created', label: 'Registered', render: (t) => fmtDate(t.created) },
          { key: 'actions', label: '', sortable: false, render: (t) => h('button', { type: 'button', class: 'btn btn-sm btn-danger', 'data-action': 'delete', 'aria-label': `Delete ${t.name} in ${t.zonename || 'every zone'}`, onclick: () => remove(t) }, 'Delete') },
        ],
      })));
    };
    filter.addEventListener('input', () => rows && draw());

    async function remove(t) {
      if (!await confirmAction({
        title: `Delete template ${t.name}?`,
        text: `Its copy in zone ${t.zonename || '(all)'} is removed from secondary storage. VMs already made from it keep their disks; it is refused while VMs still use it.`,
        confirm: 'Delete template',
      })) return;
      await runJob(jobs, `Deleting ${t.name}`, 'deleteTemplate', { id: t.id, zoneid: t.zoneid || undefined }, { done: () => `Template ${t.name} deleted.` });
      p.now();
    }

    register.addEventListener('click', async () => {
      if (!zones.length) zones = await listAll('listZones').catch(() => []);
      if (!ostypes.length) ostypes = await listAll('listOsTypes').catch(() => []);
      const done = await formModal({
        title: 'Register a template', submit: 'Register', action: 'register-submit', wide: true,
        fields: [
          { label: 'Name', name: 'name', required: true },
          { label: 'Description', name: 'displaytext', required: true },
          { label: 'URL', name: 'url', type: 'url', required: true, placeholder: 'https://images.example.com/ubuntu-22.04.qcow2', help: 'http:// or https:// address of the image. It is downloaded by the cloud, not by your browser.' },
          { label: 'Zone', name: 'zoneid', type: 'select', required: true, options: [{ value: '-1', label: 'All zones' }, ...zones.map((z) => ({ value: z.id, label: z.name }))] },
          { label: 'Format', name: 'format', type: 'select', required: true, value: 'QCOW2', options: FORMATS },
          { label: 'OS type', name: 'ostypeid', type: 'select', options: [{ value: '', label: 'Other Linux (64-bit)' }, ...ostypes.map((o) => ({ value: o.id, label: o.description }))] },
          { label: 'Checksum', name: 'checksum', help: 'Optional: MD5 hex, or {SHA-256}hex.' },
          { label: 'Public: every account may use it', name: 'ispublic', type: 'checkbox' },
          { label: 'Featured: recommended to every account', name: 'isfeatured', type: 'checkbox' },
          { label: 'Guests accept a password set by the cloud', name: 'passwordenabled', type: 'checkbox' },
        ],
        check: (v) => (v.url && !/^https?:\/\/[^\s/]+/i.test(v.url) ? { url: 'The URL must start with http:// or https:// and name a host.' } : {}),
        onSubmit: async (v) => {
          const r = await call('registerTemplate', { ...v, hypervisor: 'KVM', ispublic: v.ispublic, isfeatured: v.isfeatured, passwordenabled: v.passwordenabled });
          return r;
        },
      });
      if (done) {
        notify(`Template ${(done.template && done.template[0] && done.template[0].name) || ''} registered; its download starts shortly.`);
        p.now();
      }
    });

    const refresh = refresher({
      load: () => listAll('listTemplates', { templatefilter: 'all', listall: true }), notice, what: 'list', updated: upd,
      draw: (d) => {
        rows = d;
        draw();
      },
    });
    const tick = async () => {
      await refresh();
      // Downloads move: look again soon while any is under way.
      return rows && rows.some((t) => downloadState(t).tone !== 'Ready' && !downloadState(t).failed) ? 2000 : 10000;
    };
    await tick();
    const p = poll(tick, 10000, { first: 2000 });
  },
});
