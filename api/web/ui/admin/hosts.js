// #/admin/hosts/<id>: one host: states, capacity, maintenance, HA and
// out-of-band management, degraded declaration, and the VMs on it.

import { h, table, badge, fmtBytes, fmtDate, card, kv, confirmAction, notify, isTransitional, keepFocus } from '../core/ui.js';
import { call, listAll } from '../core/api.js';
import { route } from '../core/router.js';
import { rootOnly, poll, runJob, jobsArea, formModal, usage, fmtMHz, wrapTable, updatedLine, refresher, tell } from './common.js';
import { hostCPU, hostMemory } from './infra.js';

const CAN_MAINTAIN = ['Enabled', 'Disabled', 'ErrorInMaintenance'];
const CAN_CANCEL = ['PrepareForMaintenance', 'Maintenance', 'ErrorInMaintenance'];
const CAN_DEGRADE = ['Disconnected', 'Alert', 'Down'];

route('/admin/hosts/:id', {
  title: 'Host',
  section: 'admin',
  adminOnly: true,
  rootOnly: true,
  async render(el, { id }) {
    if (!rootOnly(el, 'Host')) return;
    const upd = updatedLine();
    const title = h('h1', { tabindex: '-1' }, 'Host');
    const states = h('div', { class: 'head-states' });
    const actions = h('div', { class: 'page-actions' });
    const notice = h('div', { class: 'refresh-notice' });
    const jobs = jobsArea();
    const body = h('div', { class: 'host-body' });
    el.replaceChildren(
      h('div', { class: 'breadcrumb' }, h('a', { href: '#/admin/infra' }, 'Infrastructure'), ' / Host'),
      h('div', { class: 'page-head' }, h('div', { class: 'head-title' }, title, states), h('div', { class: 'page-actions' }, upd.el, actions)),
      notice, jobs, body);

    let host = null;
    let busy = 0; // jobs running from this page: poll fast meanwhile
    let providers = ['lease', 'ipmi', 'command', 'none'];
    call('listHostHAProviders', { hypervisor: 'KVM' }).then((r) => {
      const list = (r.haprovider || []).map((p) => p.haprovider || p.name).filter(Boolean);
      if (list.length) providers = list;
    }).catch(() => { /* keep the built-in list */ });

    const load = async () => {
      const r = await call('listHosts', { id });
      const x = (r.host || [])[0];
      if (!x) throw Object.assign(new Error(`There is no host with ID ${id}; it may have been deleted.`), { text: `There is no host with ID ${id}; it may have been deleted.`, command: 'listHosts' });
      const vms = await listAll('listVirtualMachines', { hostid: id, listall: true }).catch(() => null);
      return { x, vms };
    };

    const job = async (label, command, params, done) => {
      busy++;
      p.now();
      try {
        return await runJob(jobs, label, command, params, { done });
      } finally {
        busy--;
        p.now();
      }
    };

    const act = {
      async maintenance() {
        const n = (host.vms || []).filter((v) => v.state === 'Running').length;
        if (!await confirmAction({
          title: `Put ${host.x.name} into maintenance?`,
          text: `Its ${n} running VM${n === 1 ? '' : 's'} will be live-migrated to other hosts, then the host is marked Maintenance and takes no new VMs.`,
          confirm: 'Prepare for maintenance', danger: false,
        })) return;
        await job(`Maintenance of ${host.x.name}`, 'prepareHostForMaintenance', { id }, () => `${host.x.name} is in maintenance.`);
      },
      async cancelmaintenance() {
        if (!await confirmAction({ title: `End maintenance of ${host.x.name}?`, text: 'The host is Enabled again and takes new VMs. A preparation under way is called off; migrations already started finish.', confirm: 'Cancel maintenance', danger: false })) return;
        await job(`Ending maintenance of ${host.x.name}`, 'cancelHostMaintenance', { id }, () => `${host.x.name} is Enabled again.`);
      },
      async degraded() {
        if (!await confirmAction({
          title: `Declare ${host.x.name} degraded?`,
          text: 'Only do this when you are sure the host is powered off or runs nothing: its HA VMs are restarted on other hosts at once. Running them twice corrupts their disks.',
          confirm: 'Declare degraded',
        })) return;
        await job(`Declaring ${host.x.name} degraded`, 'declareHostAsDegraded', { id }, () => `${host.x.name} is declared degraded; its HA VMs restart elsewhere.`);
      },
      async canceldegraded() {
        if (!await confirmAction({ title: `Cancel the degraded state of ${host.x.name}?`, text: 'The host is Enabled again once its agent reconnects.', confirm: 'Cancel degraded', danger: false })) return;
        await job(`Restoring ${host.x.name}`, 'cancelHostAsDegraded', { id });
      },
      async enablehost() {
        await tell('updateHost', { id, allocationstate: 'Enable' }, `${host.x.name} takes new VMs again.`);
        p.now();
      },
      async disablehost() {
        if (!await confirmAction({ title: `Disable ${host.x.name}?`, text: 'The allocator puts no new VMs on it; the VMs on it keep running.', confirm: 'Disable host', danger: false })) return;
        await tell('updateHost', { id, allocationstate: 'Disable' }, `${host.x.name} takes no new VMs.`);
        p.now();
      },
      async haenable() {
        await job(`Enabling HA on ${host.x.name}`, 'enableHAForHost', { hostid: id }, () => `HA is on for ${host.x.name}.`);
      },
      async hadisable() {
        if (!await confirmAction({ title: `Turn HA off on ${host.x.name}?`, text: 'If the host fails, its HA VMs are not restarted elsewhere until HA is on again.', confirm: 'Disable HA' })) return;
        await job(`Disabling HA on ${host.x.name}`, 'disableHAForHost', { hostid: id }, () => `HA is off for ${host.x.name}.`);
      },
      async haconfigure() {
        const cur = (host.x.hostha || {}).haprovider || '';
        const r = await formModal({
          title: `HA provider of ${host.x.name}`,
          intro: 'How the cluster makes sure the host is off before it restarts its HA VMs elsewhere: lease (the agent fences itself, needs a watchdog), ipmi (out-of-band power-off), command (a fence command on the leader), none.',
          fields: [{ label: 'Provider', name: 'provider', type: 'select', required: true, value: cur || providers[0], options: providers }],
          submit: 'Configure', action: 'haconfigure-submit',
          onSubmit: (v) => job(`Configuring HA on ${host.x.name}`, 'configureHAForHost', { hostid: id, provider: v.provider }, () => `HA provider of ${host.x.name}: ${v.provider}.`),
        });
        return r;
      },
      async oobmconfigure() {
        const o = host.x.outofbandmanagement || {};
        await formModal({
          title: `Out-of-band management of ${host.x.name}`,
          intro: 'The host\'s BMC, reached with ipmitool. The password is stored for ipmitool and never shown again.',
          fields: [
            { label: 'BMC address', name: 'address', required: true, value: o.address || '', help: 'IP address or DNS name.' },
            { label: 'Port', name: 'port', type: 'number', required: true, min: 1, max: 65535, value: o.port || 623 },
            { label: 'Username', name: 'username', required: true, value: o.username || '', autocomplete: 'off' },
            { label: 'Password', name: 'password', type: 'password', required: true, autocomplete: 'new-password' },
          ],
          submit: 'Save', action: 'oobm-submit',
          onSubmit: async (v) => {
            await call('configureOutOfBandManagement', { hostid: id, driver: 'ipmitool', ...v });
            notify(`Out-of-band management of ${host.x.name} is configured; enable it to use it.`);
            p.now();
          },
        });
      },
      async oobmenable() {
        await job(`Enabling out-of-band management on ${host.x.name}`, 'enableOutOfBandManagementForHost', { hostid: id });
      },
      async oobmdisable() {
        if (!await confirmAction({ title: `Disable out-of-band management of ${host.x.name}?`, text: 'Power actions and the ipmi HA provider stop working for this host.', confirm: 'Disable' })) return;
        await job(`Disabling out-of-band management on ${host.x.name}`, 'disableOutOfBandManagementForHost', { hostid: id });
      },
      async power() {
        await formModal({
          title: `Power action on ${host.x.name}`,
          intro: 'Sent to the host\'s BMC through ipmitool, from the leader. OFF, CYCLE and RESET kill every VM on the host at once.',
          fields: [{ label: 'Action', name: 'action', type: 'select', required: true, value: 'STATUS', options: ['STATUS', 'ON', 'SOFT', 'OFF', 'CYCLE', 'RESET'] }],
          submit: 'Send', action: 'power-submit',
          onSubmit: async (v) => {
            if (['OFF', 'CYCLE', 'RESET'].includes(v.action) && !await confirmAction({ title: `${v.action} ${host.x.name}?`, text: 'Every VM on the host stops at once, without a shutdown.', confirm: v.action })) return false;
            job(`Power ${v.action} on ${host.x.name}`, 'issueOutOfBandManagementPowerAction', { hostid: id, action: v.action },
              (res) => `${host.x.name}: ${(res.outofbandmanagement && res.outofbandmanagement.description) || `power ${v.action} done`}.`);
            return true;
          },
        });
      },
    };

    const btn = (label, action, { enabled = true, kind = '', why = '' } = {}) => h('button', {
      type: 'button', class: `btn${kind ? ` btn-${kind}` : ''}`, 'data-action': action, disabled: !enabled,
      title: enabled ? null : why, onclick: () => act[action](),
    }, label);

    const draw = () => {
      const { x, vms } = host;
      title.textContent = x.name;
      document.title = `${x.name} · Stratus`;
      states.replaceChildren(
        h('span', { class: 'state-pair' }, h('span', { class: 'muted' }, 'State '), h('span', { 'data-field': 'state' }, badge(x.state))),
        h('span', { class: 'state-pair' }, h('span', { class: 'muted' }, 'Resource '), h('span', { 'data-field': 'resourcestate' }, badge(x.resourcestate))));
      const rs = x.resourcestate;
      actions.replaceChildren(
        btn('Prepare for maintenance', 'maintenance', { enabled: CAN_MAINTAIN.includes(rs), why: `Not possible while the host is ${rs}.` }),
        btn('Cancel maintenance', 'cancelmaintenance', { enabled: CAN_CANCEL.includes(rs), why: 'The host is not in maintenance.' }),
        rs === 'Disabled'
          ? btn('Enable host', 'enablehost')
          : btn('Disable host', 'disablehost', { enabled: rs === 'Enabled', why: `Not possible while the host is ${rs}.` }),
        rs === 'Degraded'
          ? btn('Cancel degraded', 'canceldegraded')
          : btn('Declare degraded', 'degraded', { kind: 'danger', enabled: CAN_DEGRADE.includes(x.state), why: 'Only a Disconnected, Alert or Down host can be declared degraded.' }));

      const onHost = (vms || []).filter((v) => !['Stopped', 'Destroyed', 'Expunging', 'Error'].includes(v.state));
      const progress = rs === 'PrepareForMaintenance'
        ? h('div', { class: 'alert alert-info', role: 'status', 'data-field': 'maintenanceprogress' },
          h('div', { class: 'alert-body' }, h('strong', {}, 'Preparing for maintenance: '),
            onHost.length ? `${onHost.length} VM${onHost.length === 1 ? '' : 's'} still on this host, being migrated to others.` : 'no VM left on this host; finishing.'))
        : rs === 'ErrorInMaintenance'
          ? h('div', { class: 'alert alert-error', role: 'alert' }, h('div', { class: 'alert-body' }, h('strong', {}, 'Maintenance failed: '),
            `${onHost.length} VM${onHost.length === 1 ? '' : 's'} could not be moved (the job's error says why). Move or stop them, then prepare for maintenance again, or cancel maintenance.`))
          : null;
      const cpu = hostCPU(x);
      const mem = hostMemory(x);
      const ha = x.hostha || {};
      const oobm = x.outofbandmanagement || {};
      body.replaceChildren(...[progress,
        h('div', { class: 'grid-2' },
          card('Details', kv([
            ['ID', h('code', {}, x.id)],
            ['IP address', x.ipaddress],
            ['Zone / pod / cluster', [x.zonename, x.podname, x.clustername].map((n) => n || '—').join(' / ')],
            ['Hypervisor', `${x.hypervisor || ''}${x.hypervisorversion ? ` (${x.hypervisorversion})` : ''}`],
            ['Agent version', x.version],
            ['CPUs', x.cpunumber ? `${x.cpunumber} × ${fmtMHz(x.cpuspeed)}${x.cpusockets ? `, ${x.cpusockets} socket${x.cpusockets === 1 ? '' : 's'}` : ''}` : ''],
            ['Host tags', x.hosttags],
            ['Last pinged', fmtDate(x.lastpinged), 'lastpinged'],
            ['Added', fmtDate(x.created)],
            x.disconnected ? ['Disconnected since', fmtDate(x.disconnected)] : null,
          ])),
          h('div', { class: 'stack' },
            card('Capacity allocated', usage('CPU', cpu.used, cpu.total, fmtMHz), usage('Memory', mem.used, mem.total, fmtBytes),
              h('p', { class: 'muted small' }, 'Allocated to VMs, out of the total with the cluster\'s overcommit ratios.')),
            card('High availability',
              kv([['HA', ha.haenable ? 'On' : 'Off', 'haenable'], ['HA state', badge(ha.hastate || 'Disabled'), 'hastate'], ['Provider', ha.haprovider || 'none configured', 'haprovider']]),
              h('div', { class: 'btn-group card-actions' },
                btn('Configure provider', 'haconfigure'),
                ha.haenable ? btn('Disable HA', 'hadisable') : btn('Enable HA', 'haenable', { kind: 'primary', enabled: !!ha.haprovider && ha.haprovider !== 'none', why: 'Configure a provider first.' })),
              !ha.haenable && (!ha.haprovider || ha.haprovider === 'none') ? h('p', { class: 'muted small card-note' }, 'Configure a provider before turning HA on.') : null),
            card('Out-of-band management',
              kv([['Enabled', oobm.enabled ? 'Yes' : 'No', 'oobmenabled'], ['Power state', badge(oobm.powerstate || 'Disabled'), 'powerstate'], oobm.address ? ['BMC', `${oobm.address}:${oobm.port || ''}`] : null]),
              h('div', { class: 'btn-group card-actions' },
                btn('Configure', 'oobmconfigure'),
                oobm.enabled ? btn('Disable', 'oobmdisable') : btn('Enable', 'oobmenable', { enabled: !!oobm.address, why: 'Configure the BMC first.' }),
                btn('Power action…', 'power', { enabled: !!oobm.enabled, why: 'Enable out-of-band management first.' })),
              !oobm.address ? h('p', { class: 'muted small card-note' }, 'Configure the host\'s BMC to enable power actions and the ipmi HA provider.') : null))),
        h('section', { class: 'card card-flush' },
          h('div', { class: 'card-head' }, h('h2', { class: 'card-title' }, `Virtual machines on ${x.name}`)),
          vms === null ? h('p', { class: 'muted pad' }, 'The VMs of this host could not be listed.')
            : wrapTable(table({
              name: 'host-vms', rows: vms, empty: 'No VMs on this host.',
              columns: [
                { key: 'name', label: 'Name', render: (v) => h('a', { href: `#/vms/${encodeURIComponent(v.id)}`, class: 'cell-name' }, v.displayname || v.name) },
                { key: 'state', label: 'State', render: (v) => badge(v.state) },
                { key: 'account', label: 'Account' },
                { key: 'serviceofferingname', label: 'Offering' },
                { key: 'haenable', label: 'HA', render: (v) => (v.haenable ? 'Yes' : 'No') },
                { key: 'created', label: 'Created', render: (v) => fmtDate(v.created) },
              ],
            })))].filter(Boolean));
    };

    const refresh = refresher({
      load, notice, what: 'state', updated: upd,
      draw: (d) => {
        host = d;
        // The page redraws every few seconds: keep a keyboard user's place.
        keepFocus(el, draw);
      },
    });
    const tick = async () => {
      await refresh();
      const moving = host && (isTransitional(host.x.resourcestate) || isTransitional(host.x.state) || ['Suspect', 'Fencing'].includes((host.x.hostha || {}).hastate));
      return busy || moving ? 2000 : 5000;
    };
    await tick();
    const p = poll(tick, 5000, { first: 2000 });
  },
});
