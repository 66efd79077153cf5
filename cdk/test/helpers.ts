/** Shared test helpers: stacks, a fake bundled zip, the CloudFormation YAML schema, fixtures. */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { App, DefaultStackSynthesizer, Stack, StackProps } from 'aws-cdk-lib';
import * as yaml from 'js-yaml';

import { setAssetsDirectoryForTesting } from '../src/assets';

/** The cdk/ directory (tests run from .test-build/test/). */
export const CDK_ROOT = path.resolve(__dirname, '..', '..');
/** The vendor-grants repository. */
export const REPO_ROOT = path.resolve(CDK_ROOT, '..');

/** A stack in a fresh app, without CDK metadata, with a fixed account and region by default. */
export function newStack(props: StackProps & { envAgnostic?: boolean } = {}): Stack {
  const app = new App({ analyticsReporting: false, outdir: tempDir('cdk-out-') });
  const { envAgnostic, ...rest } = props;
  return new Stack(app, 'Test', {
    env: envAgnostic ? undefined : { account: '123456789012', region: 'us-east-1' },
    synthesizer: new DefaultStackSynthesizer({ generateBootstrapVersionRule: false }),
    ...rest,
  });
}

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `vendor-grants-cdk-${prefix}`));
}

/** An empty but valid zip (the end-of-central-directory record alone). */
const EMPTY_ZIP = Buffer.from([0x50, 0x4b, 0x05, 0x06, ...new Array(18).fill(0)]);

/**
 * Points the provider's bundled-zip lookup at a temporary directory holding zips for
 * `architectures` (none: an empty directory, so the lookup fails).
 */
export function fakeAssets(architectures: string[] = ['x86_64', 'arm64']): string {
  const dir = tempDir('assets-');
  for (const arch of architectures) {
    fs.writeFileSync(path.join(dir, `vendor-grants-lambda-${arch}.zip`), EMPTY_ZIP);
  }
  setAssetsDirectoryForTesting(dir);
  return dir;
}

/** Restores the package's own assets directory. */
export function realAssets(): void {
  setAssetsDirectoryForTesting(undefined);
}

/**
 * A js-yaml schema for CloudFormation's short-form intrinsic tags, turning each into its long
 * form (`!Ref X` -> `{Ref: X}`, `!GetAtt A.B` -> `{"Fn::GetAtt": ["A", "B"]}`, `!Sub s` ->
 * `{"Fn::Sub": s}`, ...).
 */
export const CLOUDFORMATION_SCHEMA = yaml.DEFAULT_SCHEMA.extend(
  (
    [
      ['Ref', 'Ref'],
      ['Condition', 'Condition'],
      ['Sub', 'Fn::Sub'],
      ['GetAtt', 'Fn::GetAtt'],
      ['If', 'Fn::If'],
      ['Join', 'Fn::Join'],
      ['Equals', 'Fn::Equals'],
      ['Not', 'Fn::Not'],
      ['And', 'Fn::And'],
      ['Or', 'Fn::Or'],
      ['ImportValue', 'Fn::ImportValue'],
      ['Split', 'Fn::Split'],
      ['Select', 'Fn::Select'],
      ['FindInMap', 'Fn::FindInMap'],
      ['Base64', 'Fn::Base64'],
      ['Cidr', 'Fn::Cidr'],
      ['GetAZs', 'Fn::GetAZs'],
    ] as const
  ).flatMap(([tag, name]) =>
    (['scalar', 'sequence', 'mapping'] as const).map(
      (kind) =>
        new yaml.Type(`!${tag}`, {
          kind,
          construct: (data: unknown) => {
            if (tag === 'GetAtt' && typeof data === 'string') {
              const dot = data.indexOf('.');
              return { [name]: [data.slice(0, dot), data.slice(dot + 1)] };
            }
            return { [name]: data ?? '' };
          },
        }),
    ),
  ),
);

/** A CloudFormation template (YAML with short-form tags, or JSON) as an object. */
export function loadTemplate(file: string): any {
  return yaml.load(fs.readFileSync(file, 'utf8'), { schema: CLOUDFORMATION_SCHEMA, filename: file });
}

/**
 * Compares `actual` with the committed fixture `file`, or, with UPDATE_CONTRACT=1, writes it.
 */
export function checkFixture(file: string, actual: unknown): void {
  const text = JSON.stringify(actual, null, 2) + '\n';
  if (process.env.UPDATE_CONTRACT === '1') {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, text);
    return;
  }
  const rel = path.relative(CDK_ROOT, file);
  assert.ok(fs.existsSync(file), `${rel} does not exist: run \`UPDATE_CONTRACT=1 npm test\` to write it`);
  const expected = JSON.parse(fs.readFileSync(file, 'utf8'));
  assert.deepStrictEqual(
    JSON.parse(text),
    expected,
    `${rel} differs from what the constructs synthesize: if the change is intended, run \`UPDATE_CONTRACT=1 npm test\` and review the diff`,
  );
}

/** Asserts that `fn` throws an Error whose message is exactly `message`. */
export function throwsExactly(fn: () => unknown, message: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof Error, `expected an Error, got ${String(e)}`);
    assert.equal(e.message, message);
    return true;
  });
}

/** The resources of `type` in a template JSON. */
export function resourcesOfType(template: any, type: string): [string, any][] {
  return Object.entries(template.Resources ?? {}).filter(([, r]: [string, any]) => r.Type === type) as [
    string,
    any,
  ][];
}

/** A string or list as a list. */
export function list<T>(value: T | T[] | undefined): T[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}
