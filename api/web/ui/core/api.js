// The console's only way to the server: the public CloudStack API at
// /client/api, with a session (login's sessionkey sent with every call).

const ENDPOINT = '/client/api';
const STORE = 'stratus.session';

export class ApiError extends Error {
  command;
  status;
  errorcode;
  cserrorcode;
  text;
  constructor({ command = '', status = 0, errorcode = 0, cserrorcode = 0, text = '' }) {
    super(text || `${command || 'request'} failed`);
    this.name = 'ApiError';
    this.command = command;
    this.status = status;
    this.errorcode = errorcode || status;
    this.cserrorcode = cserrorcode;
    this.text = text || this.message;
  }
}

// Where the session lives: sessionStorage, not localStorage. It survives
// a reload of the tab but not the tab (or the browser) closing, no other
// site can read it, and it never goes in a URL or a log. The JSESSIONID
// and sessionkey cookies the server sets are HttpOnly (and scoped to
// /client), so the page cannot read the key back from them. Signing out in one tab ends the session
// on the server, so the other tabs get a 401 and go to the sign-in page.
const store = (() => {
  try {
    return window.sessionStorage;
  } catch {
    return null; /* storage refused: the session lives in memory only */
  }
})();

// A session an older console left in localStorage is removed.
try {
  window.localStorage.removeItem(STORE);
} catch {
  /* nothing stored there */
}

let current = load();
const listeners = new Set();

function load() {
  try {
    const s = JSON.parse((store && store.getItem(STORE)) || 'null');
    return s && s.sessionkey ? s : null;
  } catch {
    return null;
  }
}

function save(s) {
  current = s;
  try {
    if (s) store.setItem(STORE, JSON.stringify(s));
    else store.removeItem(STORE);
  } catch {
    /* private mode: the session lives in memory only */
  }
  for (const fn of listeners) fn(session());
}

// onSessionChange(fn) calls fn(session or null) after login and logout.
export function onSessionChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

export function session() {
  if (!current) return null;
  const type = String(current.type ?? '0');
  return {
    username: current.username,
    userid: current.userid,
    account: current.account,
    domainid: current.domainid,
    type,
    isRootAdmin: type === '1',
    isAdmin: type === '1' || type === '2',
    firstname: current.firstname || '',
    lastname: current.lastname || '',
  };
}

// List commands whose item key does not follow "list" + plural.
const ITEM_KEYS = {
  listAsyncJobs: 'asyncjobs',
  listDomainChildren: 'domain',
  listHostHAProviders: 'haprovider',
  listHostHAResources: 'hostha',
  listCapacity: 'capacity',
};

// itemKey names the array of a list command's answer.
export function itemKey(command) {
  if (ITEM_KEYS[command]) return ITEM_KEYS[command];
  let k = command.replace(/^list/, '').toLowerCase();
  if (k.endsWith('ies')) k = k.slice(0, -3) + 'y';
  else if (k.endsWith('sses')) k = k.slice(0, -2);
  else if (k.endsWith('s')) k = k.slice(0, -1);
  return k;
}

function isRead(command) {
  return /^(list|get|query)/.test(command);
}

// encode flattens params the CloudStack way: arrays of objects become
// name[0].key=..., plain arrays are joined with commas; empty values are left out.
function encode(command, params) {
  const body = new URLSearchParams();
  body.set('command', command);
  body.set('response', 'json');
  for (const [k, v] of Object.entries(params || {})) {
    if (v === undefined || v === null || v === '') continue;
    if (Array.isArray(v) && v.length && typeof v[0] === 'object') {
      v.forEach((o, i) => {
        for (const [kk, vv] of Object.entries(o)) {
          if (vv !== undefined && vv !== null) body.set(`${k}[${i}].${kk}`, String(vv));
        }
      });
    } else if (Array.isArray(v)) {
      if (v.length) body.set(k, v.join(','));
    } else {
      body.set(k, String(v));
    }
  }
  if (current && current.sessionkey && command !== 'login') body.set('sessionkey', current.sessionkey);
  return body;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function once(command, body) {
  let res;
  try {
    res = await fetch(ENDPOINT, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body,
    });
  } catch (e) {
    throw new ApiError({ command, status: 0, text: `The server did not answer (${e.message || 'network error'})` });
  }
  let data = null;
  try {
    data = await res.json();
  } catch {
    data = null;
  }
  const key = `${command.toLowerCase()}response`;
  const inner = data && (data[key] || data.errorresponse);
  if (!res.ok || !inner || inner.errorcode) {
    const text = (inner && inner.errortext) || res.headers.get('X-Description') || `HTTP ${res.status} ${res.statusText}`.trim();
    throw new ApiError({
      command,
      status: res.status,
      errorcode: (inner && inner.errorcode) || res.status,
      cserrorcode: (inner && inner.cserrorcode) || 0,
      text,
    });
  }
  return inner;
}

function expired(err) {
  return err.errorcode === 401 || (err.errorcode === 432 && /session/i.test(err.text));
}

// call runs one command and answers the inner object of its response.
export async function call(command, params = {}) {
  const body = encode(command, params);
  let r;
  try {
    r = await once(command, body);
  } catch (err) {
    const transient = err.status === 0 || (err.status >= 500 && err.status <= 599);
    if (!(err instanceof ApiError) || !isRead(command) || !transient) {
      if (err instanceof ApiError && expired(err) && command !== 'login') sessionExpired();
      throw err;
    }
    // Another node may be taking over as leader: try a read once more.
    await sleep(400);
    r = await once(command, body);
  }
  if (command.startsWith('list')) {
    const k = itemKey(command);
    if (!Array.isArray(r[k])) {
      const found = Object.keys(r).find((x) => x !== 'count' && Array.isArray(r[x]));
      r[k] = found ? r[found] : [];
    }
    if (typeof r.count !== 'number') r.count = r[k].length;
  }
  return r;
}

function sessionExpired() {
  if (!current) return;
  save(null);
  const here = location.hash.replace(/^#/, '');
  if (!here.startsWith('/login')) {
    location.hash = `#/login?expired=1${here && here !== '/' ? `&next=${encodeURIComponent(here)}` : ''}`;
  }
}

// Jobs this tab is waiting for, so the shell can show how many run.
const running = new Map();
const jobListeners = new Set();
function jobsChanged() {
  for (const fn of jobListeners) fn([...running.values()]);
}

// onJobsChange(fn) calls fn([{jobid, command}]) whenever a job this tab
// follows starts or ends.
export function onJobsChange(fn) {
  jobListeners.add(fn);
  return () => jobListeners.delete(fn);
}

// callAsync runs an async command and polls its job until it ends.
export async function callAsync(command, params = {}, onProgress = () => {}) {
  const r = await call(command, params);
  const jobid = r.jobid;
  if (!jobid) return r;
  running.set(jobid, { jobid, command });
  jobsChanged();
  try {
    return await follow(command, r, onProgress);
  } finally {
    running.delete(jobid);
    jobsChanged();
  }
}

async function follow(command, r, onProgress) {
  const jobid = r.jobid;
  onProgress({ jobid, jobstatus: 0, jobprocstatus: 0, cmd: command, id: r.id });
  let wait = 500;
  let failures = 0;
  for (;;) {
    await sleep(wait);
    wait = Math.min(2000, Math.round(wait * 1.5));
    let q;
    try {
      q = await call('queryAsyncJobResult', { jobid });
      failures = 0;
    } catch (err) {
      // The job lives on in the cluster; a node going away is no reason to give up.
      if (err instanceof ApiError && (err.status === 0 || err.status >= 500) && ++failures < 15) continue;
      throw err;
    }
    const p = { jobid, jobstatus: q.jobstatus, jobprocstatus: q.jobprocstatus, cmd: q.cmd || command, id: r.id };
    onProgress(p);
    if (q.jobstatus === 1) return q.jobresult || {};
    if (q.jobstatus === 2) {
      const jr = q.jobresult || {};
      throw new ApiError({
        command,
        status: q.jobresultcode || jr.errorcode || 530,
        errorcode: jr.errorcode || q.jobresultcode || 530,
        cserrorcode: jr.cserrorcode || 0,
        text: jr.errortext || `${command} failed`,
      });
    }
  }
}

// listAll pages through a list command (500 a page) and answers every item.
export async function listAll(command, params = {}, item = itemKey(command)) {
  const out = [];
  for (let page = 1; ; page++) {
    const r = await call(command, { ...params, page, pagesize: 500 });
    const items = r[item] || [];
    out.push(...items);
    if (items.length < 500 || out.length >= (r.count || 0)) return out;
  }
}

export async function login(username, password, domain) {
  const r = await call('login', { username, password, domain: domain || undefined });
  save({
    sessionkey: r.sessionkey,
    username: r.username,
    userid: r.userid,
    account: r.account,
    domainid: r.domainid,
    type: r.type,
    firstname: r.firstname,
    lastname: r.lastname,
  });
  return session();
}

export async function logout() {
  try {
    if (current) await call('logout');
  } catch {
    /* the session is dropped here either way */
  }
  save(null);
}

// health asks the node that answers which one it is (no credentials needed).
export async function health() {
  try {
    const res = await fetch('/v1/health', { credentials: 'same-origin', cache: 'no-store' });
    if (!res.ok) return null;
    return await res.json();
  } catch {
    return null;
  }
}
