// cicada charts: line charts on <canvas>.
"use strict";
