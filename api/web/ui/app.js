// Entry point of the Stratus web console: core, every view module (each
// registers its routes when imported), then the router.

import { start } from './core/router.js';
import { showError } from './core/ui.js';
import './core/login.js';
import './tenant/vms.js';
import './tenant/deploy.js';
import './tenant/volumes.js';
import './tenant/snapshots.js';
import './tenant/jobs.js';
import './tenant/keys.js';
import './admin/index.js';

// Nothing fails silently: an error no view caught still shows in words.
window.addEventListener('unhandledrejection', (e) => {
  showError(e.reason || 'An action failed for an unknown reason.');
});
// Nor does a bug in a click handler: the user learns that the action did
// not happen (and the browser's console still has the details).
window.addEventListener('error', (e) => {
  if (!e.error && !e.message) return;
  showError({ text: `The console hit a bug: ${e.message || e.error}. Reload the page and try again.` });
});

start();
