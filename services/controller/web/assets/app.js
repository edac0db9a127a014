// cicada web UI: single page, hash routes (docs/WEB.md).
"use strict";
