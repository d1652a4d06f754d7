// Hash routing and the console's shell (header, left navigation, message
// area, page). View modules register their pages with route() when imported.

import { h, showError, clearMessages, loading } from './ui.js';
import { session, logout, health, onSessionChange, onJobsChange } from './api.js';

const routes = [];
let leaveFns = [];
let navToken = 0;
let shell = null;

// opts: {title, section: 'tenant'|'admin'|'public', nav?, adminOnly?,
// rootOnly? (root admins only: hidden from the others' navigation; the
// page itself still says why when its URL is typed), render}.
export function route(pattern, opts) {
  const parts = pattern.split('/').filter(Boolean);
  routes.push({ pattern, parts, name: parts.map((p) => (p.startsWith(':') ? p.slice(1) : p)).join('-') || 'home', section: 'tenant', ...opts });
}

export function go(hash) {
  if (!hash.startsWith('#')) hash = `#${hash}`;
  if (location.hash === hash) render();
  else location.hash = hash;
}

// onLeave registers cleanup (timers) for the page being shown; it runs when
// the user navigates away.
export function onLeave(fn) {
  leaveFns.push(fn);
}

export function currentPath() {
  return parse().path;
}

function parse() {
  const raw = location.hash.replace(/^#/, '') || '/';
  const [path, qs] = raw.split('?');
  return { path: path || '/', query: new URLSearchParams(qs || '') };
}

function match(path) {
  const segs = path.split('/').filter(Boolean);
  for (const r of routes) {
    if (r.parts.length !== segs.length) continue;
    const params = {};
    let ok = true;
    r.parts.forEach((p, i) => {
      if (p.startsWith(':')) params[p.slice(1)] = safeDecode(segs[i]);
      else if (p !== segs[i]) ok = false;
    });
    if (ok) return { r, params };
  }
  return null;
}

function safeDecode(s) {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function homeFor() {
  return '#/vms';
}

// ---- shell ----

let nodeTimer = null;

function buildShell() {
  clearInterval(nodeTimer);
  // Which node answers can change (load balancer, failover): ask again now and then.
  nodeTimer = setInterval(() => {
    if (shell && document.visibilityState === 'visible') renderNode();
  }, 15000);
  const nav = h('nav', { class: 'sidenav', 'aria-label': 'Main' });
  const node = h('span', { class: 'node', title: 'The management server that answered' });
  const jobs = h('a', { href: '#/jobs', class: 'jobs-pill', hidden: true, 'aria-live': 'polite' });
  const user = h('div', { class: 'user-menu' });
  const messages = h('div', { id: 'messages', class: 'messages' });
  const page = h('div', { class: 'page-slot' });
  const main = h('main', { id: 'main', class: 'main', tabindex: '-1' }, messages, page);
  const root = h('div', { class: 'shell' },
    h('a', { href: '#main', class: 'skip-link', onclick: (e) => { e.preventDefault(); main.focus(); } }, 'Skip to content'),
    h('header', { class: 'topbar' },
      h('a', { href: '#/vms', class: 'brand' }, h('img', { src: '/ui/favicon.svg', alt: '', width: 24, height: 24 }), h('span', {}, 'Stratus'), h('span', { class: 'brand-sub' }, 'Console')),
      h('div', { class: 'topbar-right' }, jobs, node, user)),
    h('div', { class: 'body' }, nav, main));
  return { root, nav, node, user, messages, page, main, jobs };
}

function initials(s) {
  const n = `${s.firstname || ''} ${s.lastname || ''}`.trim() || s.username || '?';
  return n.split(/\s+/).map((w) => w[0]).join('').slice(0, 2).toUpperCase();
}

function renderUser() {
  const s = session();
  if (!s || !shell) return;
  const role = s.isRootAdmin ? 'Root admin' : s.isAdmin ? 'Domain admin' : 'User';
  shell.user.replaceChildren(
    h('span', { class: 'avatar', 'aria-hidden': 'true' }, initials(s)),
    h('span', { class: 'user-info' }, h('span', { class: 'user-name', 'data-field': 'username' }, s.username), h('span', { class: 'user-sub' }, `${s.account} · ${role}`)),
    h('button', { type: 'button', class: 'btn btn-sm btn-ghost', 'data-action': 'logout', onclick: async () => { await logout(); go('#/login'); } }, 'Sign out'));
}

async function renderNode() {
  if (!shell) return;
  const hh = await health();
  if (!shell) return;
  if (hh && hh.id) {
    shell.node.replaceChildren(h('span', { class: 'dot dot-ok', 'aria-hidden': 'true' }), `Node ${hh.id}`, h('span', { class: 'muted' }, hh.version ? ` · ${hh.version}` : ''));
    shell.node.dataset.node = hh.id;
  } else {
    shell.node.replaceChildren(h('span', { class: 'dot dot-bad', 'aria-hidden': 'true' }), 'Node unreachable');
    delete shell.node.dataset.node;
  }
}

// allowed reports whether session s may open route r.
function allowed(r, s) {
  if ((r.adminOnly || r.section === 'admin') && !(s && s.isAdmin)) return false;
  if (r.rootOnly && !(s && s.isRootAdmin)) return false;
  return true;
}

export function refreshNav() {
  if (!shell) return;
  const s = session();
  const here = parse().path;
  const groups = [
    { label: 'Compute', section: 'tenant' },
    { label: 'Operations', section: 'admin' },
  ];
  // The nav entry that is the longest prefix of the current path is active.
  let active = null;
  for (const r of routes) {
    if (!r.nav) continue;
    const p = r.pattern;
    if ((here === p || here.startsWith(`${p}/`)) && (!active || p.length > active.length)) active = p;
  }
  if (!active && here.startsWith('/deploy')) active = '/vms';
  shell.nav.replaceChildren(...groups.map((g) => {
    // Pages the account cannot open are not offered (a typed URL still
    // gets the page's own refusal): admin pages for admins, root-only
    // pages (the whole cloud's infrastructure) for root admins.
    const items = routes.filter((r) => r.nav && r.section === g.section && allowed(r, s));
    if (!items.length) return null;
    return h('div', { class: 'nav-group' },
      h('div', { class: 'nav-heading' }, g.label),
      h('ul', {}, items.map((r) => h('li', {}, h('a', {
        href: `#${r.pattern}`, class: `nav-link${active === r.pattern ? ' active' : ''}`,
        'aria-current': active === r.pattern ? 'page' : null,
      }, h('span', { class: `nav-icon icon-${r.name}`, 'aria-hidden': 'true' }), r.nav)))));
  }).filter(Boolean));
}

// ---- rendering ----

async function render() {
  const token = ++navToken;
  for (const fn of leaveFns) {
    try {
      fn();
    } catch {
      /* a broken cleanup must not block navigation */
    }
  }
  leaveFns = [];
  const { path, query } = parse();
  const s = session();
  if (path !== '/login' && !s) {
    const next = path !== '/' ? `?next=${encodeURIComponent(path + (query.toString() ? `?${query}` : ''))}` : '';
    location.replace(`#/login${next}`);
    return;
  }
  if (path === '/' || (path === '/login' && s)) {
    const next = query.get('next') || '';
    location.replace(path === '/login' && next.startsWith('/') && !next.startsWith('/login') ? `#${next}` : homeFor(s));
    return;
  }
  const m = match(path);
  const app = document.getElementById('app');
  let el;
  if (m && m.r.section === 'public') {
    shell = null;
    el = h('div', { class: 'page page-public', 'data-page': m.r.name });
    app.replaceChildren(el);
  } else {
    if (!shell || !app.contains(shell.root)) {
      shell = buildShell();
      app.replaceChildren(shell.root);
      renderUser();
    }
    clearMessages();
    refreshNav();
    renderNode();
    el = h('div', { class: 'page', 'data-page': m ? m.r.name : 'notfound' });
    shell.page.replaceChildren(el);
  }
  if (!m) {
    document.title = 'Not found · Stratus';
    el.replaceChildren(h('h1', { tabindex: '-1' }, 'Page not found'),
      h('p', {}, `There is no page at #${path}. `, h('a', { href: homeFor(s) }, 'Go to your virtual machines.')));
    focusHeading(el);
    return;
  }
  const { r, params } = m;
  document.title = `${r.title || 'Stratus'} · Stratus`;
  if ((r.adminOnly || r.section === 'admin') && !(s && s.isAdmin)) {
    el.replaceChildren(h('h1', { tabindex: '-1' }, r.title || 'Not permitted'),
      h('div', { class: 'alert alert-error', role: 'alert' }, 'This page is for administrators; your account cannot open it.'),
      h('p', {}, h('a', { href: homeFor(s) }, 'Go to your virtual machines.')));
    focusHeading(el);
    return;
  }
  const placeholder = loading();
  el.replaceChildren(h('h1', { tabindex: '-1' }, r.title || ''), placeholder);
  try {
    await r.render(el, params, query);
  } catch (err) {
    if (token !== navToken) return;
    el.replaceChildren(h('h1', { tabindex: '-1' }, r.title || 'Error'),
      h('div', { class: 'page-error' },
        h('p', {}, 'This page could not be loaded.'),
        h('button', { type: 'button', class: 'btn', 'data-action': 'retry', onclick: () => render() }, 'Retry')));
    showError(err, shell ? undefined : el);
  }
  if (token !== navToken) return;
  placeholder.remove();
  if (!el.querySelector('h1')) el.prepend(h('h1', { tabindex: '-1' }, r.title || ''));
  focusHeading(el);
}

function focusHeading(el) {
  const h1 = el.querySelector('h1');
  if (!h1) return;
  if (!h1.hasAttribute('tabindex')) h1.tabIndex = -1;
  // Keep the focus where it is if the user already moved into the page.
  if (!el.contains(document.activeElement) || document.activeElement === document.body) h1.focus({ preventScroll: false });
}

function renderJobs(list) {
  if (!shell) return;
  shell.jobs.hidden = list.length === 0;
  shell.jobs.replaceChildren(h('span', { class: 'spinner', 'aria-hidden': 'true' }),
    list.length === 1 ? `1 job running` : `${list.length} jobs running`);
}

export function start() {
  onJobsChange(renderJobs);
  window.addEventListener('hashchange', () => render());
  onSessionChange((s) => {
    if (!s && parse().path !== '/login') {
      render();
      return;
    }
    renderUser();
    refreshNav();
  });
  render();
}

