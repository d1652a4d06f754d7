// #/admin/accounts: domains, accounts and users: list, create,
// disable/enable, delete.

import { h, table, badge, fmtDate, pageHeader, confirmAction, notify, showError } from '../core/ui.js';
import { call, listAll, session } from '../core/api.js';
import { route } from '../core/router.js';
import { tabs, formModal, wrapTable, runJob, jobsArea, tell } from './common.js';

const ACCOUNT_TYPES = { 0: 'User', 1: 'Root admin', 2: 'Domain admin' };

// CloudStack answers account and user states in lower case.
const title = (s) => (s ? String(s)[0].toUpperCase() + String(s).slice(1) : '');

function domainOptions(domains) {
  return domains.slice().sort((a, b) => String(a.path).localeCompare(String(b.path))).map((d) => ({ value: d.id, label: d.path || d.name }));
}

const passwordFields = [
  { label: 'Password', name: 'password', type: 'password', required: true, autocomplete: 'new-password', help: 'At least 8 characters.' },
  { label: 'Repeat password', name: 'password2', type: 'password', required: true, autocomplete: 'new-password' },
];

function checkPassword(v) {
  const out = {};
  if (v.password && v.password.length < 8) out.password = 'The password needs at least 8 characters.';
  if (v.password2 !== v.password) out.password2 = 'The passwords differ.';
  if (v.email && !/^[^\s@]+@[^\s@]+$/.test(v.email)) out.email = 'This is not an e-mail address.';
  return out;
}

function personFields() {
  return [
    { label: 'Username', name: 'username', required: true, autocomplete: 'off', pattern: '[A-Za-z0-9._@+-]+', placeholder: 'alice' },
    { label: 'First name', name: 'firstname', required: true },
    { label: 'Last name', name: 'lastname', required: true },
    { label: 'E-mail', name: 'email', type: 'email', required: true },
    ...passwordFields,
  ];
}

function strip(v) {
  const o = { ...v };
  delete o.password2;
  return o;
}

// lifecycle renders the Disable/Enable and Delete buttons of an account or
// user row, each confirmed where it takes something away.
function lifecycle({ noun, name, jobs, reload, fixed, disable, enable, remove }) {
  const Noun = title(noun);
  const run = async (x, label, o, params, done) => {
    if (o.async) await runJob(jobs, `${label} ${name(x)}`, o.command, params, { done: () => done });
    else await tell(o.command, params, done);
    reload();
  };
  return (x) => {
    const why = fixed(x);
    if (why) return h('span', { class: 'muted small' }, why);
    const enabled = String(x.state).toLowerCase() === 'enabled';
    const onDisable = async () => {
      if (!await confirmAction({ title: `Disable ${noun} ${name(x)}?`, text: disable.text, confirm: `Disable ${noun}` })) return;
      await run(x, 'Disabling', disable, disable.params(x), `${Noun} ${name(x)} disabled.`);
    };
    const onEnable = async () => {
      await tell(enable, { id: x.id }, `${Noun} ${name(x)} enabled.`);
      reload();
    };
    const onDelete = async () => {
      if (!await confirmAction({ title: `Delete ${noun} ${name(x)}?`, text: remove.text, confirm: `Delete ${noun}` })) return;
      await run(x, 'Deleting', remove, { id: x.id }, `${Noun} ${name(x)} deleted.`);
    };
    return h('div', { class: 'btn-group' },
      enabled
        ? h('button', { type: 'button', class: 'btn btn-sm', 'data-action': 'disable', onclick: onDisable }, 'Disable')
        : h('button', { type: 'button', class: 'btn btn-sm', 'data-action': 'enable', onclick: onEnable }, 'Enable'),
      h('button', { type: 'button', class: 'btn btn-sm btn-danger', 'data-action': 'delete', 'aria-label': `Delete ${noun} ${name(x)}`, onclick: onDelete }, 'Delete'));
  };
}

function domainsPanel(box, jobs) {
  const listBox = h('div');
  const create = h('button', { type: 'button', class: 'btn btn-primary', 'data-action': 'create-domain' }, 'New domain');
  box.replaceChildren(h('div', { class: 'toolbar toolbar-end' }, create), listBox);
  let domains = [];
  const load = async () => {
    try {
      domains = await listAll('listDomains', { listall: true });
    } catch (err) {
      showError(err);
      return;
    }
    listBox.replaceChildren(wrapTable(table({
      name: 'domains', rows: domains.slice().sort((a, b) => String(a.path).localeCompare(String(b.path))), empty: 'No domains.',
      columns: [
        { key: 'path', label: 'Path', render: (d) => h('span', { class: `cell-name domain-level-${Math.min(Number(d.level) || 0, 5)}` }, d.path || d.name) },
        { key: 'name', label: 'Name' },
        { key: 'state', label: 'State', render: (d) => badge(d.state) },
        { key: 'networkdomain', label: 'Network domain' },
        { key: 'created', label: 'Created', render: (d) => fmtDate(d.created) },
        { key: 'actions', label: '', sortable: false, render: (d) => (Number(d.level) === 0 ? null : h('button', { type: 'button', class: 'btn btn-sm btn-danger', 'data-action': 'delete', 'aria-label': `Delete domain ${d.path}`, onclick: () => remove(d) }, 'Delete')) },
      ],
    })));
  };
  async function remove(d) {
    const r = await formModal({
      title: `Delete domain ${d.path}?`,
      intro: 'Without clean-up the domain must be empty: the server names what is left.',
      fields: [{ label: 'Also delete its subdomains, accounts and users', name: 'cleanup', type: 'checkbox' }],
      submit: 'Delete domain', action: 'delete-submit',
      onSubmit: async (v) => ({ cleanup: v.cleanup }),
    });
    if (!r) return;
    await runJob(jobs, `Deleting domain ${d.path}`, 'deleteDomain', { id: d.id, cleanup: r.cleanup }, { done: () => `Domain ${d.path} deleted.` });
    load();
  }
  create.addEventListener('click', async () => {
    const r = await formModal({
      title: 'New domain', submit: 'Create', action: 'create-domain-submit',
      fields: [
        { label: 'Name', name: 'name', required: true, pattern: '[^/]+', title: 'A domain name cannot contain "/".' },
        { label: 'Parent domain', name: 'parentdomainid', type: 'select', required: true, options: domainOptions(domains) },
        { label: 'Network domain', name: 'networkdomain', help: 'Optional DNS suffix for its VMs.' },
      ],
      onSubmit: (v) => call('createDomain', v),
    });
    if (r) {
      notify('Domain created.');
      load();
    }
  });
  return load();
}

function accountsPanel(box, jobs) {
  const listBox = h('div');
  const create = h('button', { type: 'button', class: 'btn btn-primary', 'data-action': 'create-account' }, 'New account');
  box.replaceChildren(h('div', { class: 'toolbar toolbar-end' }, create), listBox);
  let domains = [];
  const load = async () => {
    let rows;
    try {
      [rows, domains] = await Promise.all([listAll('listAccounts', { listall: true }), listAll('listDomains', { listall: true })]);
    } catch (err) {
      showError(err);
      return;
    }
    listBox.replaceChildren(wrapTable(table({
      name: 'accounts', rows, empty: 'No accounts.',
      columns: [
        { key: 'name', label: 'Account', render: (a) => h('span', { class: 'cell-name' }, a.name) },
        { key: 'state', label: 'State', render: (a) => badge(title(a.state)) },
        { key: 'rolename', label: 'Role', render: (a) => a.rolename || ACCOUNT_TYPES[a.accounttype] || '' },
        { key: 'domain', label: 'Domain', render: (a) => a.domainpath || a.domain },
        { key: 'users', label: 'Users', sortValue: (a) => (a.user || []).length, render: (a) => (a.user || []).map((u) => u.username).join(', ') },
        { key: 'created', label: 'Created', render: (a) => fmtDate(a.created) },
        { key: 'actions', label: '', sortable: false, render: (a) => accountActions(a) },
      ],
    })));
  };
  const me = session();
  const accountActions = lifecycle({
    noun: 'account', name: (a) => a.name, jobs, reload: () => load(),
    fixed: (a) => (a.isdefault ? 'built-in' : me && a.name === me.account && a.domainid === me.domainid ? 'your account' : ''),
    disable: { command: 'disableAccount', params: (a) => ({ id: a.id, lock: false }), async: true, text: 'Its users cannot sign in or call the API, and its running VMs are stopped.' },
    enable: 'enableAccount',
    remove: { command: 'deleteAccount', async: true, text: 'Its users, keys and sessions are deleted. This cannot be undone.' },
  });
  create.addEventListener('click', async () => {
    const s = session();
    const types = [{ value: '0', label: 'User' }, { value: '2', label: 'Domain admin' }];
    if (s && s.isRootAdmin) types.push({ value: '1', label: 'Root admin' });
    const r = await formModal({
      title: 'New account', submit: 'Create', action: 'create-account-submit', wide: true,
      intro: 'Creates the account and its first user.',
      fields: [
        { label: 'Account name', name: 'account', help: 'Defaults to the username.' },
        { label: 'Type', name: 'accounttype', type: 'select', required: true, options: types, value: '0' },
        { label: 'Domain', name: 'domainid', type: 'select', required: true, options: domainOptions(domains) },
        ...personFields(),
      ],
      check: checkPassword,
      onSubmit: (v) => call('createAccount', strip(v)),
    });
    if (r) {
      notify('Account created.');
      load();
    }
  });
  return load();
}

function usersPanel(box, jobs) {
  const listBox = h('div');
  const create = h('button', { type: 'button', class: 'btn btn-primary', 'data-action': 'create-user' }, 'New user');
  box.replaceChildren(h('div', { class: 'toolbar toolbar-end' }, create), listBox);
  let accounts = [];
  const me = session();
  const load = async () => {
    let rows;
    try {
      [rows, accounts] = await Promise.all([listAll('listUsers', { listall: true }), listAll('listAccounts', { listall: true })]);
    } catch (err) {
      showError(err);
      return;
    }
    listBox.replaceChildren(wrapTable(table({
      name: 'users', rows, empty: 'No users.',
      columns: [
        { key: 'username', label: 'Username', render: (u) => h('span', {}, h('span', { class: 'cell-name' }, u.username), h('span', { class: 'cell-sub' }, `${u.firstname || ''} ${u.lastname || ''}`.trim())) },
        { key: 'state', label: 'State', render: (u) => badge(title(u.state)) },
        { key: 'account', label: 'Account' },
        { key: 'domain', label: 'Domain' },
        { key: 'rolename', label: 'Role' },
        { key: 'email', label: 'E-mail' },
        { key: 'created', label: 'Created', render: (u) => fmtDate(u.created) },
        { key: 'actions', label: '', sortable: false, render: (u) => userActions(u) },
      ],
    })));
  };
  const userActions = lifecycle({
    noun: 'user', name: (u) => u.username, jobs, reload: () => load(),
    fixed: (u) => (me && u.id === me.userid ? 'you' : ''),
    disable: { command: 'disableUser', params: (u) => ({ id: u.id }), async: true, text: 'The user cannot sign in or call the API until enabled again.' },
    enable: 'enableUser',
    remove: { command: 'deleteUser', async: false, text: 'The user\'s keys and sessions go with it. This cannot be undone.' },
  });
  create.addEventListener('click', async () => {
    const opts = accounts.map((a) => ({ value: `${a.domainid}|${a.name}`, label: `${a.name} (${a.domainpath || a.domain})` }));
    const r = await formModal({
      title: 'New user', submit: 'Create', action: 'create-user-submit', wide: true,
      fields: [{ label: 'Account', name: 'accountkey', type: 'select', required: true, options: opts }, ...personFields()],
      check: checkPassword,
      onSubmit: (v) => {
        const [domainid, account] = v.accountkey.split('|');
        const p = strip(v);
        delete p.accountkey;
        return call('createUser', { ...p, domainid, account });
      },
    });
    if (r) {
      notify('User created.');
      load();
    }
  });
  return load();
}

route('/admin/accounts', {
  title: 'Accounts',
  section: 'admin',
  nav: 'Accounts',
  adminOnly: true,
  async render(el, params, query) {
    const jobs = jobsArea();
    const panels = { domains: domainsPanel, accounts: accountsPanel, users: usersPanel };
    const initial = panels[query.get('tab')] ? query.get('tab') : 'accounts';
    const t = tabs([{ key: 'domains', label: 'Domains' }, { key: 'accounts', label: 'Accounts' }, { key: 'users', label: 'Users' }],
      (key, box) => panels[key](box, jobs), initial);
    el.replaceChildren(pageHeader('Domains, accounts and users'), jobs, t.el);
  },
});
