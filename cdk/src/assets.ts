/**
 * Where the provider finds the Lambda zip bundled into the package by `npm pack` (the `prepack`
 * script copies `make package`'s dist/vendor-grants-lambda-ARCH.zip into `assets/`). Internal:
 * not exported from the package.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

const PACKAGE_NAME = 'vendor-grants-cdk';

let assetsDirectoryOverride: string | undefined;

/**
 * Tests only: look for bundled zips in `dir` instead of the package's `assets/` (undefined
 * restores the default), so no test depends on whether a developer has built a zip.
 */
export function setAssetsDirectoryForTesting(dir: string | undefined): void {
  assetsDirectoryOverride = dir;
}

/** The package's root: the nearest directory up from this file whose package.json is ours. */
export function packageRoot(): string {
  let dir = __dirname;
  for (;;) {
    const manifest = path.join(dir, 'package.json');
    if (fs.existsSync(manifest)) {
      try {
        if (JSON.parse(fs.readFileSync(manifest, 'utf8')).name === PACKAGE_NAME) return dir;
      } catch {
        // not a package.json we can read: keep looking
      }
    }
    const parent = path.dirname(dir);
    if (parent === dir) return path.resolve(__dirname, '..');
    dir = parent;
  }
}

/** The directory bundled zips are looked up in. */
export function assetsDirectory(): string {
  return assetsDirectoryOverride ?? path.join(packageRoot(), 'assets');
}

/** The bundled zip's path for an architecture (`x86_64` or `arm64`); it may not exist. */
export function bundledZipPath(architecture: string): string {
  return path.join(assetsDirectory(), `vendor-grants-lambda-${architecture}.zip`);
}

/** The error when no zip is bundled for the architecture and no `code` was given. */
export function missingZipMessage(architecture: string): string {
  return (
    `no bundled Lambda zip at ${bundledZipPath(architecture)}: run \`make package\` (ARCH=${architecture}) ` +
    'in the vendor-grants repository and `npm pack` again, or pass `code`'
  );
}
