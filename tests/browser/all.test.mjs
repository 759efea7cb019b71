// The browser tests, in one process so that they share one server and one Chromium (starting
// them is the slow part). Each module registers its own tests.

import "./admin.mjs";
import "./codecs.mjs";
import "./ice_tcp.mjs";
import "./media.mjs";
import "./pages.mjs";
import "./recording.mjs";
import "./reoffer.mjs";
import "./surveys.mjs";
import "./tools.mjs";
import "./voices.mjs";
import "./turn.mjs";
