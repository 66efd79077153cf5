#!/usr/bin/env node
// prepack: copies the Lambda zips that `make package` built (../dist/vendor-grants-lambda-ARCH.zip
// in the vendor-grants repository) into assets/, so the packed package carries them. Whatever of
// x86_64 and arm64 exists is copied; a missing one is only reported (the provider then asks for
// `code` or a rebuild when it is used with that architecture).
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const dist = process.env.VENDOR_GRANTS_DIST || path.resolve(root, '..', 'dist');
const assets = path.join(root, 'assets');
fs.mkdirSync(assets, { recursive: true });

let copied = 0;
for (const arch of ['x86_64', 'arm64']) {
  const name = `vendor-grants-lambda-${arch}.zip`;
  const from = path.join(dist, name);
  const to = path.join(assets, name);
  if (fs.existsSync(from)) {
    fs.copyFileSync(from, to);
    console.log(`prepack: bundled ${path.relative(root, to)} (from ${from})`);
    copied += 1;
  } else if (fs.existsSync(to)) {
    fs.rmSync(to);
    console.log(`prepack: removed stale ${path.relative(root, to)} (no ${from})`);
  } else {
    console.log(`prepack: no ${from} (run \`make package ARCH=${arch}\` to bundle it)`);
  }
}
if (copied === 0) {
  console.warn('prepack: warning: no Lambda zip bundled; VendorGrantsProvider will need `code`');
}
