// Operator views: each module registers its routes when imported.

import './infra.js';
import './hosts.js';
import './templates.js';
import './offerings.js';
import './accounts.js';
import './events.js';
import './cluster.js';
