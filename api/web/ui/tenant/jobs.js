// Async jobs (#/jobs): the account's jobs, refreshed live while any runs.

import { h, pageHeader, badge, fmtDate, parseDate, card, kv } from '../core/ui.js';
import { session } from '../core/api.js';
import { route } from '../core/router.js';
import { listView } from './common.js';

const STATUS = { 0: 'Pending', 1: 'Succeeded', 2: 'Failed' };

function result(j) {
  const r = j.jobresult;
  if (!r) return '';
  if (j.jobstatus === 2) return h('span', { class: 'field-error' }, r.errortext || (r.errorcode ? `error ${r.errorcode}` : 'failed'));
  const obj = Object.values(r).find((x) => x && typeof x === 'object' && (x.name || x.id));
  return obj ? (obj.name || obj.id) : '';
}

function instance(j) {
  if (!j.jobinstanceid) return '';
  if (j.jobinstancetype === 'VirtualMachine') return h('a', { href: `#/vms/${encodeURIComponent(j.jobinstanceid)}` }, `VM ${j.jobinstanceid.slice(0, 8)}`);
  return `${j.jobinstancetype || ''} ${j.jobinstanceid.slice(0, 8)}`;
}

function took(j) {
  if (!j.completed) return h('span', { class: 'muted' }, 'running…');
  const ms = parseDate(j.completed) - parseDate(j.created);
  if (!Number.isFinite(ms)) return '';
  const sec = Math.max(0, Math.round(ms / 1000));
  return sec < 60 ? `${sec} s` : `${Math.floor(sec / 60)} min ${sec % 60} s`;
}

route('/jobs', {
  title: 'Async jobs',
  nav: 'Jobs',
  async render(el) {
    const s = session();
    const body = h('div');
    const detail = h('div');
    el.replaceChildren(pageHeader('Async jobs'), h('p', { class: 'page-sub' }, 'Long actions run as jobs in the cluster; they survive a server or leader change. This list refreshes itself while a job is pending.'), detail, body);
    listView(body, {
      name: 'jobs',
      command: 'listAsyncJobs',
      params: () => (s && s.isAdmin ? { listall: true } : {}),
      search: false,
      columns: [
        { key: 'cmd', label: 'Command', render: (j) => [h('span', { class: 'cell-name' }, (j.cmd || '').replace(/^.*\./, '').replace(/Cmd$/, '')), h('span', { class: 'cell-sub mono', title: j.jobid }, `job ${j.jobid.slice(0, 8)}`)] },
        { key: 'jobstatus', label: 'Status', render: (j) => badge(STATUS[j.jobstatus] || String(j.jobstatus)), sortValue: (j) => j.jobstatus },
        { key: 'jobinstanceid', label: 'Resource', render: instance },
        { key: 'result', label: 'Result', sortable: false, render: result, class: 'wrap' },
        s && s.isAdmin ? { key: 'account', label: 'Account' } : null,
        { key: 'created', label: 'Started', render: (j) => fmtDate(j.created) },
        { key: 'completed', label: 'Took', render: took, sortValue: (j) => (j.completed ? parseDate(j.completed) - parseDate(j.created) : Infinity) },
      ].filter(Boolean),
      rowId: (j) => j.jobid,
      onRow: (j) => detail.replaceChildren(card(`Job ${j.jobid}`, kv([
        ['Command', j.cmd],
        ['Status', badge(STATUS[j.jobstatus])],
        ['Result code', String(j.jobresultcode ?? '')],
        ['Resource', instance(j)],
        ['Started', fmtDate(j.created)],
        ['Finished', fmtDate(j.completed)],
        ['Result', j.jobresult ? h('pre', { class: 'secret' }, JSON.stringify(j.jobresult, null, 2)) : ''],
      ]), h('button', { type: 'button', class: 'btn btn-sm', onclick: () => detail.replaceChildren() }, 'Close'))),
      pollWhile: (rows) => rows.some((j) => j.jobstatus === 0),
      newestFirst: true,
      empty: 'No jobs yet. Deploying, starting or stopping a VM runs a job.',
    });
  },
});
