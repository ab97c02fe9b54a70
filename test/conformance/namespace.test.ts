/** The conformance suite against the namespace driver. */
import { namespaceSkipReason } from '../helpers/daemon.js';
import { conformanceSuite } from './suite.js';

conformanceSuite('namespace', await namespaceSkipReason());
