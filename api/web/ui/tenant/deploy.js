// The deploy wizard (#/deploy): zone, template, offering, data disk, name
// and user data; the job's progress shows while the VM is placed and started.

import { h, pageHeader, card, field, kv, validate, formValues, showError, jobProgress, fmtMiB, setFieldError, loading, emptyState, notify } from '../core/ui.js';
import { call, callAsync } from '../core/api.js';
import { route, go } from '../core/router.js';
import { utf8ToBase64 } from './common.js';

const NAME_RE = /^[a-zA-Z]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/;

function offeringLabel(o) {
  const parts = [o.name];
  if (o.iscustomized) parts.push('custom size');
  else parts.push(`${o.cpunumber || '?'} vCPU × ${o.cpuspeed || '?'} MHz, ${fmtMiB(o.memory)}`);
  return parts.join(' — ');
}

function diskLabel(d) {
  return d.iscustomized || !d.disksize ? `${d.name} — choose a size` : `${d.name} — ${d.disksize} GiB`;
}

route('/deploy', {
  title: 'Deploy a virtual machine',
  async render(el, params, query) {
    const [zones, offerings, disks, keypairs] = await Promise.all([
      call('listZones'),
      call('listServiceOfferings'),
      call('listDiskOfferings'),
      call('listSSHKeyPairs').catch(() => ({ sshkeypair: [] })),
    ]);
    if (!zones.zone.length) {
      el.replaceChildren(pageHeader('Deploy a virtual machine'),
        emptyState('There is no zone to deploy in yet. An operator has to create a zone with hosts first.'));
      return;
    }
    const zoneF = field({ label: 'Zone', name: 'zoneid', type: 'select', required: true, options: zones.zone.map((z) => ({ value: z.id, label: z.name })), value: query.get('zoneid') || zones.zone[0].id });
    const tmplF = field({ label: 'Template', name: 'templateid', type: 'select', required: true, options: [], help: 'The root disk\'s image; only templates ready in the zone can be picked.' });
    const offF = field({ label: 'Compute offering', name: 'serviceofferingid', type: 'select', required: true,
      options: [{ value: '', label: 'Choose an offering…' }, ...offerings.serviceoffering.map((o) => ({ value: o.id, label: offeringLabel(o) }))],
      value: offerings.serviceoffering.length === 1 ? offerings.serviceoffering[0].id : '' });
    const customBox = h('div', { class: 'grid-3', hidden: true },
      field({ label: 'vCPUs', name: 'cpuNumber', type: 'number', min: 1, max: 64, value: 1 }),
      field({ label: 'CPU speed (MHz)', name: 'cpuSpeed', type: 'number', min: 100, max: 10000, value: 1000 }),
      field({ label: 'Memory (MiB)', name: 'memory', type: 'number', min: 64, max: 1048576, value: 1024 }));
    const diskF = field({ label: 'Data disk', name: 'diskofferingid', type: 'select',
      options: [{ value: '', label: 'No data disk' }, ...disks.diskoffering.map((d) => ({ value: d.id, label: diskLabel(d) }))],
      help: 'Optional: an extra disk created and attached with the VM.' });
    const sizeF = field({ label: 'Data disk size (GiB)', name: 'size', type: 'number', min: 1, max: 65536, value: 20 });
    sizeF.hidden = true;
    const nameF = field({ label: 'Name', name: 'name', required: true, placeholder: 'web-01', autocomplete: 'off',
      help: 'Host name of the VM: letters, digits and hyphens, starting with a letter, at most 63 characters.' });
    const dispF = field({ label: 'Display name', name: 'displayname', placeholder: 'Optional: a friendlier label' });
    const keyF = keypairs.sshkeypair.length ? field({ label: 'SSH key pair', name: 'keypair', type: 'select',
      options: [{ value: '', label: 'None' }, ...keypairs.sshkeypair.map((k) => ({ value: k.name, label: `${k.name}${k.fingerprint ? ` (${k.fingerprint})` : ''}` }))],
      help: 'Its public key is given to the VM through cloud-init.' }) : null;
    const udF = field({ label: 'User data', name: 'userdata', type: 'textarea', rows: 6, placeholder: '#cloud-config\npackages:\n  - nginx',
      help: 'Optional cloud-init data as plain text; it is base64-encoded for you (at most 32 KiB).' });

    const summary = h('div');
    const progress = h('div');
    const submit = h('button', { type: 'submit', class: 'btn btn-primary btn-block', 'data-action': 'deploy' }, 'Deploy VM');
    const form = h('form', { class: 'wizard', novalidate: true, 'aria-label': 'Deploy a virtual machine' },
      h('div', { class: 'wizard-steps' },
        h('div', { class: 'grid-2' },
          card(null, h('h2', { class: 'step-title wizard-step' }, 'Location'), zoneF),
          card(null, h('h2', { class: 'step-title wizard-step' }, 'Template'), tmplF)),
        card(null, h('h2', { class: 'step-title wizard-step' }, 'Compute offering'), offF, customBox),
        card(null, h('h2', { class: 'step-title wizard-step' }, 'Storage'), diskF, sizeF),
        card(null, h('h2', { class: 'step-title wizard-step' }, 'Details'), nameF, dispF, keyF, udF)),
      h('div', { class: 'summary' }, card('Summary', summary, h('div', { class: 'form-actions' }, submit), progress)));

    let templates = [];
    let loadSeq = 0;
    async function loadTemplates() {
      const my = ++loadSeq;
      const keep = tmplF.control.value;
      tmplF.control.replaceChildren(h('option', { value: '' }, 'Loading templates…'));
      tmplF.control.disabled = true;
      let list = [];
      try {
        const r = await call('listTemplates', { templatefilter: 'executable', zoneid: zoneF.control.value });
        list = r.template;
      } catch (err) {
        if (my === loadSeq) showError(err);
      }
      // A later zone pick has its own load: only the newest one fills the list.
      if (my !== loadSeq) return;
      templates = list;
      tmplF.control.disabled = false;
      const ready = templates.filter((t) => t.isready !== false);
      tmplF.control.replaceChildren(
        h('option', { value: '' }, templates.length ? 'Choose a template…' : 'No templates in this zone'),
        ...templates.map((t) => h('option', { value: t.id, disabled: t.isready === false, title: t.displaytext || t.name }, `${t.name}${t.isready === false ? ' — not ready' : ''}`)));
      if (keep && ready.some((t) => t.id === keep)) tmplF.control.value = keep;
      else if (ready.length === 1) tmplF.control.value = ready[0].id;
      updateSummary();
    }

    function selected(sel) {
      const o = sel.options[sel.selectedIndex];
      return o && o.value ? o.textContent : '—';
    }
    function offering() {
      return offerings.serviceoffering.find((o) => o.id === offF.control.value);
    }
    function disk() {
      return disks.diskoffering.find((d) => d.id === diskF.control.value);
    }
    function updateSummary() {
      const o = offering();
      const d = disk();
      customBox.hidden = !(o && o.iscustomized);
      sizeF.hidden = !(d && d.iscustomized);
      summary.replaceChildren(kv([
        ['Zone', selected(zoneF.control)],
        ['Template', (templates.find((t) => t.id === tmplF.control.value) || {}).name || '—'],
        ['Offering', o ? o.name : '—'],
        ['CPU / RAM', o && !o.iscustomized ? `${o.cpunumber} vCPU, ${fmtMiB(o.memory)}` : o ? 'custom' : '—'],
        ['Data disk', d ? (d.iscustomized ? `${d.name}, ${sizeF.control.value || '?'} GiB` : diskLabel(d)) : 'none'],
        ['Name', nameF.control.value.trim() || '—'],
      ]));
    }
    form.addEventListener('input', updateSummary);
    form.addEventListener('change', updateSummary);
    zoneF.control.addEventListener('change', loadTemplates);

    let busy = false;
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      if (busy) return;
      const ok = validate(form, (v) => {
        const bad = {};
        if (v.name && !NAME_RE.test(v.name)) bad.name = 'Use letters, digits and hyphens only, start with a letter, do not end with a hyphen, at most 63 characters.';
        if (v.userdata && new TextEncoder().encode(v.userdata).length > 24 * 1024) bad.userdata = 'User data is too long: at most 24 KiB of text (32 KiB once encoded).';
        return bad;
      });
      if (!ok) return;
      const v = formValues(form);
      const p = { zoneid: v.zoneid, templateid: v.templateid, serviceofferingid: v.serviceofferingid, name: v.name, displayname: v.displayname || undefined };
      const o = offering();
      if (o && o.iscustomized) {
        p.details = [{ cpuNumber: v.cpuNumber, cpuSpeed: v.cpuSpeed, memory: v.memory }];
      }
      if (v.diskofferingid) {
        p.diskofferingid = v.diskofferingid;
        const d = disk();
        if (d && d.iscustomized) p.size = v.size;
      }
      if (v.userdata) p.userdata = utf8ToBase64(v.userdata);
      if (v.keypair) p.keypair = v.keypair;
      busy = true;
      submit.disabled = true;
      submit.textContent = 'Deploying…';
      const jp = jobProgress(progress, `Deploying ${v.name}`);
      let vmid = '';
      try {
        const res = await callAsync('deployVirtualMachine', p, (pr) => {
          if (pr.id) vmid = pr.id;
          jp.update(pr);
        });
        jp.done(res, `${v.name} is running.`);
        notify(`${v.name} is deployed.`);
        const id = (res.virtualmachine && res.virtualmachine.id) || vmid;
        go(`#/vms/${encodeURIComponent(id)}`);
      } catch (err) {
        // The message area says why; the summary keeps a short note.
        jp.fail({ text: 'see the message at the top of the page' });
        showError(err);
        // Point at the field a parameter error names.
        const m = /\b(zoneid|templateid|serviceofferingid|diskofferingid|name|userdata|size|displayname)\b/.exec(err.text || '');
        if (m && err.errorcode === 431) {
          const c = form.querySelector(`[name=${m[1]}]`);
          if (c) {
            setFieldError(c, err.text);
            c.focus();
          }
        }
        if (vmid) {
          progress.appendChild(h('p', {}, 'The VM record was created: ', h('a', { href: `#/vms/${encodeURIComponent(vmid)}` }, 'open it'), ' to see its state, retry or destroy it.'));
        }
        busy = false;
        submit.disabled = false;
        submit.textContent = 'Deploy VM';
      }
    });

    el.replaceChildren(pageHeader('Deploy a virtual machine'), form);
    updateSummary();
    await loadTemplates();
  },
});
