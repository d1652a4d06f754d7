// Virtual machines: the list (#/vms) and the detail page (#/vms/<id>).

import { h, pageHeader, badge, card, kv, table, fmtDate, fmtMiB, fmtBytes, showError, isTransitional, field, validate, formValues, loading, emptyState, confirmAction, formDialog } from '../core/ui.js';
import { call, session } from '../core/api.js';
import { route, go, onLeave } from '../core/router.js';
import { listView, runJob, runSync, link, zoneOptions, base64ToUtf8, transient } from './common.js';

const VM_STATES = ['Running', 'Stopped', 'Starting', 'Stopping', 'Migrating', 'Error', 'Destroyed', 'Expunging'];

function ip(vm) {
  const nic = (vm.nic || []).find((n) => n.isdefault) || (vm.nic || [])[0];
  return nic ? nic.ipaddress : '';
}

function spec(vm) {
  const parts = [];
  if (vm.cpunumber) parts.push(`${vm.cpunumber} vCPU`);
  if (vm.memory) parts.push(fmtMiB(vm.memory));
  return parts.join(' · ');
}

route('/vms', {
  title: 'Virtual machines',
  nav: 'Instances',
  async render(el) {
    const s = session();
    const zones = await zoneOptions();
    const body = h('div');
    const chips = h('div', { class: 'chips', role: 'group', 'aria-label': 'VMs by state' });
    el.replaceChildren(
      pageHeader('Virtual machines', h('a', { href: '#/deploy', class: 'btn btn-primary', 'data-action': 'new-vm' }, '+ Deploy VM')),
      chips, body);
    const scope = s && s.isAdmin ? { listall: true } : {};
    let view;
    let counting = false;
    // Counts per state, as quick filters; refreshed with the list.
    async function counts(current) {
      if (counting) return;
      counting = true;
      try {
        const states = ['', 'Running', 'Stopped', 'Error', 'Destroyed'];
        const got = await Promise.all(states.map((st) => call('listVirtualMachines', { ...scope, state: st, page: 1, pagesize: 1 }).then((r) => r.count, () => null)));
        if (!el.isConnected) return;
        chips.replaceChildren(...states.map((st, i) => (got[i] === null || (st && !got[i] && st !== 'Running' && st !== 'Stopped') ? null
          : h('button', { type: 'button', class: `chip${(current.state || '') === st ? ' chip-on' : ''}`, 'data-state-filter': st || 'all', 'aria-pressed': String((current.state || '') === st),
            onclick: () => view.setFilter('state', st) }, st ? badge(st) : h('span', { class: 'chip-label' }, 'All'), h('span', { class: 'chip-count' }, String(got[i])))))
          .filter(Boolean));
      } finally {
        counting = false;
      }
    }
    const columns = [
      { key: 'name', label: 'Name', render: (v) => link(`#/vms/${encodeURIComponent(v.id)}`, v.name, v.displayname && v.displayname !== v.name ? v.displayname : '') },
      { key: 'state', label: 'State', render: (v) => badge(v.state) },
      { key: 'ipaddress', label: 'IP address', render: (v) => h('span', { class: 'mono' }, ip(v)), sortValue: ip },
      { key: 'zonename', label: 'Zone' },
      { key: 'serviceofferingname', label: 'Offering', render: (v) => [v.serviceofferingname || '', h('span', { class: 'cell-sub' }, spec(v))] },
      { key: 'templatename', label: 'Template' },
      s && s.isRootAdmin ? { key: 'hostname', label: 'Host' } : null, // domain admins are not told hosts
      s && s.isAdmin ? { key: 'account', label: 'Account' } : null,
      { key: 'created', label: 'Created', render: (v) => fmtDate(v.created) },
    ].filter(Boolean);
    view = listView(body, {
      onLoad: (r, filter) => counts(filter),
      name: 'vms',
      command: 'listVirtualMachines',
      searchHint: 'Name, state or IP address…',
      params: () => scope,
      columns,
      filters: [
        { name: 'state', label: 'State', options: VM_STATES },
        ...(zones.length > 1 ? [{ name: 'zoneid', label: 'Zone', options: zones }] : []),
      ],
      onRow: (v) => go(`#/vms/${encodeURIComponent(v.id)}`),
      empty: emptyState('No virtual machines yet.', h('a', { href: '#/deploy', class: 'btn btn-primary' }, 'Deploy your first VM')),
    });
  },
});

// Which actions a VM in a state offers.
function actionsFor(vm, s) {
  const st = vm.state;
  const a = [];
  if (st === 'Stopped' || st === 'Error') a.push('start');
  if (st === 'Running') a.push('stop', 'reboot');
  if (['Running', 'Stopped', 'Error'].includes(st)) a.push('destroy');
  if (st === 'Destroyed') {
    a.push('recover');
    if (s && s.isAdmin) a.push('expunge');
  }
  if (st === 'Stopped') a.push('scale');
  if (st !== 'Destroyed' && st !== 'Expunging') a.push('edit');
  return a;
}

route('/vms/:id', {
  title: 'Virtual machine',
  async render(el, { id }) {
    const s = session();
    const jobs = h('div', { class: 'jobs-inline', 'aria-label': 'Jobs of this VM' });
    const head = h('div');
    const overview = h('div');
    const nics = h('div');
    const vols = h('div', {}, loading());
    const events = h('div', {}, loading());
    const tags = h('div', {}, loading());
    let vm = null;
    let running = 0;
    let timer = null;
    onLeave(() => clearTimeout(timer));

    async function fetchVM() {
      const r = await call('listVirtualMachines', { id, listall: s && s.isAdmin ? true : undefined });
      return r.virtualmachine[0] || null;
    }

    const act = async (action) => {
      const name = vm.name;
      const defs = {
        start: ['Starting', 'startVirtualMachine', {}, null, `${name} is running.`],
        stop: ['Stopping', 'stopVirtualMachine', {}, { title: `Stop ${name}?`, text: 'The guest OS is asked to shut down; unsaved work in the VM may be lost.', confirm: 'Stop' }, `${name} is stopped.`],
        reboot: ['Rebooting', 'rebootVirtualMachine', {}, { title: `Reboot ${name}?`, text: 'The VM restarts; connections to it drop for a moment.', confirm: 'Reboot' }, `${name} rebooted.`],
        destroy: ['Destroying', 'destroyVirtualMachine', {}, { title: `Destroy ${name}?`, text: 'The VM is stopped and marked Destroyed. It can be recovered until it is expunged.', confirm: 'Destroy' }, `${name} is destroyed.`],
        expunge: ['Expunging', 'expungeVirtualMachine', {}, { title: `Expunge ${name}?`, text: 'The VM and its root volume are deleted for good. This cannot be undone.', confirm: 'Expunge' }, `${name} is expunged.`],
      };
      if (action === 'edit') {
        const v = await formDialog({
          title: `Edit ${name}`, submit: 'Save',
          fields: [
            { label: 'Display name', name: 'displayname', value: vm.displayname || '' },
            { label: 'Group', name: 'group', value: vm.group || '', help: 'A label to sort VMs by, e.g. web or db.' },
            { label: 'High availability: restart it on another host if its host fails', name: 'haenable', type: 'checkbox', value: !!vm.haenable },
          ],
        });
        if (!v) return;
        const r = await runSync(null, 'updateVirtualMachine', { id, displayname: v.displayname || undefined, group: v.group, haenable: v.haenable }, { success: `${name} updated.` });
        if (r) {
          headSig = '';
          await refresh(false);
        }
        return;
      }
      if (action === 'scale') {
        let offs;
        try {
          offs = (await call('listServiceOfferings')).serviceoffering.filter((o) => !o.iscustomized && o.id !== vm.serviceofferingid);
        } catch (err) {
          showError(err);
          return;
        }
        if (!offs.length) {
          showError({ command: 'listServiceOfferings', text: 'There is no other compute offering to change to.' });
          return;
        }
        const v = await formDialog({
          title: `Change the offering of ${name}`, text: `It has ${vm.serviceofferingname} (${spec(vm)}) now. The VM must be stopped.`, submit: 'Change offering',
          fields: [{ label: 'Compute offering', name: 'serviceofferingid', type: 'select', required: true, options: offs.map((o) => ({ value: o.id, label: `${o.name} — ${o.cpunumber} vCPU, ${fmtMiB(o.memory)}` })) }],
        });
        if (!v) return;
        const r = await runSync(null, 'changeServiceForVirtualMachine', { id, serviceofferingid: v.serviceofferingid }, { success: `${name} has a new offering.` });
        if (r) {
          headSig = '';
          await refresh(false);
        }
        return;
      }
      if (action === 'recover') {
        const r = await runSync(null, 'recoverVirtualMachine', { id }, { success: `${name} is recovered (Stopped).`, confirm: { title: `Recover ${name}?`, text: 'The VM comes back Stopped, with its volumes.', confirm: 'Recover', danger: false } });
        if (r) await refresh(true);
        return;
      }
      const [label, command, baseExtra, confirm, success] = defs[action];
      let extra = baseExtra;
      if (action === 'stop') {
        const v = await formDialog({ title: confirm.title, text: confirm.text, submit: 'Stop', danger: true,
          fields: [{ label: 'Force: power it off at once, without waiting for the guest', name: 'forced', type: 'checkbox' }] });
        if (!v) return;
        extra = v.forced ? { forced: true } : {};
      } else if (confirm && !(await confirmAction(confirm))) return;
      running++;
      renderHead();
      schedule();
      const res = await runJob(jobs, `${label} ${name}`, command, { id, ...extra }, { success });
      running--;
      if (action === 'expunge' && res) {
        go('#/vms');
        return;
      }
      await refresh(true);
    };

    let headSig = '';
    function renderHead() {
      const order = ['start', 'stop', 'reboot', 'scale', 'edit', 'recover', 'destroy', 'expunge'];
      const acts = running ? [] : actionsFor(vm, s).sort((x, y) => order.indexOf(x) - order.indexOf(y));
      // Rebuild only on a change, so a keyboard user's focus stays put.
      const sig = JSON.stringify([vm.name, vm.displayname, vm.state, running > 0, acts]);
      if (sig === headSig) return;
      const hadFocus = head.contains(document.activeElement) ? document.activeElement.dataset.action || 'h1' : null;
      headSig = sig;
      document.title = `${vm.name} · Stratus`;
      const labels = { start: 'Start', stop: 'Stop', reboot: 'Reboot', destroy: 'Destroy', recover: 'Recover', expunge: 'Expunge', edit: 'Edit', scale: 'Change offering' };
      const kinds = { start: 'primary', destroy: 'danger', expunge: 'danger' };
      head.replaceChildren(
        h('div', { class: 'breadcrumb' }, h('a', { href: '#/vms' }, 'Virtual machines'), ' / ', vm.name),
        h('div', { class: 'page-head' },
          h('div', { class: 'row' }, h('h1', { tabindex: '-1' }, vm.name), h('span', { 'data-field': 'state' }, badge(vm.state)),
            vm.displayname && vm.displayname !== vm.name ? h('span', { class: 'muted' }, vm.displayname) : null),
          h('div', { class: 'page-actions' },
            running ? h('span', { class: 'muted' }, 'A job is running…') : null,
            acts.map((a) => h('button', { type: 'button', class: `btn ${kinds[a] ? `btn-${kinds[a]}` : ''}`, 'data-action': a, onclick: () => act(a) }, labels[a])),
            h('button', { type: 'button', class: 'btn btn-ghost', 'data-action': 'refresh', onclick: () => refresh(true) }, 'Refresh'))));
      if (hadFocus) {
        const again = hadFocus === 'h1' ? head.querySelector('h1') : head.querySelector(`[data-action="${hadFocus}"]`);
        (again || head.querySelector('h1')).focus();
      }
    }

    function renderOverview() {
      overview.replaceChildren(card('Overview', kv([
        ['Name', vm.name, 'name'],
        ['Display name', vm.displayname],
        ['ID', h('span', { class: 'mono' }, vm.id), 'id'],
        ['Zone', vm.zonename],
        ['Template', vm.templatename],
        ['Offering', `${vm.serviceofferingname || ''}${spec(vm) ? ` (${spec(vm)})` : ''}`],
        ['IP address', h('span', { class: 'mono' }, ip(vm)), 'ipaddress'],
        s && s.isRootAdmin ? ['Host', vm.hostid ? h('a', { href: `#/admin/hosts/${encodeURIComponent(vm.hostid)}` }, vm.hostname || vm.hostid) : '', 'hostname'] : null,
        ['HA', vm.haenable ? 'Enabled' : 'Off'],
        ['Group', vm.group],
        ['Account', `${vm.account || ''}${vm.domain ? ` (${vm.domain})` : ''}`],
        ['Created', fmtDate(vm.created)],
        vm.keypairs ? ['SSH key', vm.keypairs] : null,
      ])));
      nics.replaceChildren(card('Network interfaces', h('div', { class: 'table-wrap' }, table({
        name: 'nics',
        rows: vm.nic || [],
        columns: [
          { key: 'ipaddress', label: 'Address', render: (n) => [h('span', { class: 'mono' }, n.ipaddress || ''), n.isdefault ? h('span', { class: 'cell-sub' }, 'default') : null] },
          { key: 'netmask', label: 'Netmask' },
          { key: 'gateway', label: 'Gateway' },
          { key: 'macaddress', label: 'MAC', render: (n) => h('span', { class: 'mono' }, n.macaddress || '') },
        ],
        empty: 'No network interface yet: the VM gets one when it is placed.',
      }))));
    }

    async function loadVolumes() {
      try {
        const r = await call('listVolumes', { virtualmachineid: id, listall: s && s.isAdmin ? true : undefined });
        vols.replaceChildren(card('Volumes', h('div', { class: 'table-wrap' }, table({
          name: 'vm-volumes',
          rows: r.volume,
          columns: [
            { key: 'name', label: 'Name', render: (v) => link(`#/volumes?id=${encodeURIComponent(v.id)}`, v.name) },
            { key: 'type', label: 'Type' },
            { key: 'deviceid', label: 'Device' },
            { key: 'size', label: 'Size', render: (v) => fmtBytes(v.size), sortValue: (v) => Number(v.size) },
            { key: 'volumestate', label: 'State', render: (v) => badge(v.state), sortValue: (v) => v.state },
          ],
          empty: 'No volumes.',
        }))));
      } catch (err) {
        vols.replaceChildren(card('Volumes', h('p', { class: 'muted' }, 'Volumes could not be loaded.')));
        showError(err);
      }
    }

    async function loadEvents() {
      try {
        const r = await call('listEvents', { resourceid: id, pagesize: 15, page: 1, listall: s && s.isAdmin ? true : undefined });
        events.replaceChildren(card('Recent events', h('div', { class: 'table-wrap' }, table({
          name: 'vm-events',
          rows: r.event,
          columns: [
            { key: 'created', label: 'When', render: (e) => fmtDate(e.created) },
            { key: 'type', label: 'Event', render: (e) => h('span', { class: 'mono' }, e.type) },
            { key: 'level', label: 'Level', render: (e) => badge(e.level || 'INFO') },
            { key: 'description', label: 'Description', class: 'wrap' },
            { key: 'username', label: 'By' },
          ],
          empty: 'No events recorded for this VM.',
        }))));
      } catch (err) {
        events.replaceChildren(card('Recent events', h('p', { class: 'muted' }, 'Events could not be loaded.')));
        showError(err);
      }
    }

    async function loadTags() {
      let list = [];
      try {
        const r = await call('listTags', { resourceid: id, resourcetype: 'UserVm', listall: s && s.isAdmin ? true : undefined });
        list = r.tag;
      } catch (err) {
        showError(err);
      }
      const form = h('form', { class: 'inline-form', novalidate: true, 'aria-label': 'Add a tag' },
        field({ label: 'Key', name: 'tagkey', required: true }),
        field({ label: 'Value', name: 'tagvalue', required: true }),
        h('button', { type: 'submit', class: 'btn', 'data-action': 'add-tag' }, 'Add tag'));
      form.addEventListener('submit', async (e) => {
        e.preventDefault();
        if (!validate(form)) return;
        const v = formValues(form);
        const r = await runJob(jobs, `Tagging ${vm.name}`, 'createTags', { resourceids: id, resourcetype: 'UserVm', tags: [{ key: v.tagkey, value: v.tagvalue }] }, { success: `Tag ${v.tagkey} added.` });
        if (r) loadTags();
      });
      tags.replaceChildren(card('Tags',
        list.length ? h('div', { class: 'tag-list' }, list.map((t) => h('span', { class: 'tag', 'data-tag': t.key },
          `${t.key} = ${t.value} `,
          h('button', { type: 'button', class: 'alert-close', 'aria-label': `Remove tag ${t.key}`, 'data-action': 'remove-tag', onclick: async () => {
            const r = await runJob(jobs, `Removing tag ${t.key}`, 'deleteTags', { resourceids: id, resourcetype: 'UserVm', tags: [{ key: t.key, value: t.value }] }, { success: `Tag ${t.key} removed.` });
            if (r) loadTags();
          } }, '×')))) : h('p', { class: 'muted' }, 'No tags.'),
        form));
    }

    async function refresh(all) {
      if (!el.isConnected) return;
      try {
        const fresh = await fetchVM();
        if (!el.isConnected) return;
        if (!fresh) {
          el.replaceChildren(h('h1', { tabindex: '-1' }, 'Virtual machine not found'),
            h('p', {}, 'It may have been expunged, or it belongs to another account. ', h('a', { href: '#/vms' }, 'Back to the list.')));
          return;
        }
        const changed = !vm || fresh.state !== vm.state;
        vm = fresh;
        renderHead();
        renderOverview();
        if (all || changed) {
          loadVolumes();
          loadEvents();
        }
      } catch (err) {
        // A poll that meets an election or a node going away just tries again.
        if (all || !transient(err)) showError(err);
      }
      schedule();
    }

    function schedule() {
      clearTimeout(timer);
      if (!el.isConnected || !vm) return;
      // Fast while something changes, slowly otherwise (HA or another user may act on it).
      const busy = running || isTransitional(vm.state);
      timer = setTimeout(() => (busy || document.visibilityState === 'visible' ? refresh(false) : schedule()), busy ? 2000 : 10000);
    }

    vm = await fetchVM();
    if (!vm) {
      el.replaceChildren(h('h1', { tabindex: '-1' }, 'Virtual machine not found'),
        h('p', {}, `No virtual machine ${id} is visible to your account. `, h('a', { href: '#/vms' }, 'Back to the list.')));
      return;
    }
    renderHead();
    renderOverview();
    el.replaceChildren(head, jobs,
      h('div', { class: 'grid-2' }, overview, h('div', {}, nics, tags)),
      vols, events, userdataCard(vm));
    loadVolumes();
    loadEvents();
    loadTags();
    schedule();
  },
});

function userdataCard(vm) {
  const body = h('div', {}, h('button', { type: 'button', class: 'btn btn-sm', 'data-action': 'show-userdata', onclick: async () => {
    try {
      const r = await call('listVirtualMachines', { id: vm.id, userdata: true, listall: session().isAdmin ? true : undefined });
      const ud = (r.virtualmachine[0] || {}).userdata;
      body.replaceChildren(ud ? h('pre', { class: 'secret' }, base64ToUtf8(ud)) : h('p', { class: 'muted' }, 'This VM has no user data.'));
    } catch (err) {
      showError(err);
    }
  } }, 'Show user data'));
  return card('User data', body);
}

