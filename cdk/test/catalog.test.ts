/**
 * The construct's copy of the vendor catalog (src/catalog.ts) against the function's own,
 * src/catalog/vendors.toml, read here with a small reader for the subset of TOML it uses.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';

import { Access, GrantMode, Vendor } from '../src';
import { CATALOG } from '../src/catalog';
import { REPO_ROOT } from './helpers';

interface TomlVendor {
  id?: string;
  name?: string;
  url?: string;
  principal?: { kinds: string[]; names: string };
  partitions?: string[];
  principals?: string[];
  modes?: string[];
  default_level?: string;
  role?: Record<string, string>;
  requirements?: string[];
  defaults: string[];
}

const strings = (text: string): string[] => [...text.matchAll(/"([^"]*)"/g)].map((m) => m[1]);

function readVendors(file: string): TomlVendor[] {
  const lines = fs.readFileSync(file, 'utf8').split('\n').map((l) => l.replace(/#.*$/, '').trim());
  const vendors: TomlVendor[] = [];
  let table = '';
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i];
    if (line === '') continue;
    if (line.startsWith('[')) {
      table = line;
      if (line === '[[vendors]]') vendors.push({ defaults: [] });
      const mode = /^\[vendors\.defaults\.([a-z-]+)\]$/.exec(line);
      if (mode) vendors[vendors.length - 1].defaults.push(mode[1]);
      continue;
    }
    // A multi-line array continues until its brackets balance.
    while ((line.match(/\[/g) ?? []).length > (line.match(/\]/g) ?? []).length) line += ' ' + lines[++i];
    if (table !== '[[vendors]]') continue;
    const [key, ...rest] = line.split('=');
    const value = rest.join('=').trim();
    const v = vendors[vendors.length - 1] as any;
    switch (key.trim()) {
      case 'id':
      case 'name':
      case 'url':
      case 'default_level':
        v[key.trim()] = strings(value)[0];
        break;
      case 'principal':
        v.principal = {
          kinds: strings(/kinds\s*=\s*\[([^\]]*)\]/.exec(value)?.[1] ?? ''),
          names: /names\s*=\s*"([^"]*)"/.exec(value)?.[1],
        };
        break;
      case 'principals':
      case 'partitions':
      case 'modes':
      case 'requirements':
        v[key.trim()] = strings(value);
        break;
      case 'role':
        v.role = Object.fromEntries([...value.matchAll(/([a-z_]+)\s*=\s*"([^"]*)"/g)].map((m) => [m[1], m[2]]));
        break;
    }
  }
  return vendors;
}

test('src/catalog.ts is the catalog of src/catalog/vendors.toml', () => {
  const toml = readVendors(path.join(REPO_ROOT, 'src', 'catalog', 'vendors.toml'));
  assert.deepEqual(
    CATALOG.map((v) => v.id),
    toml.map((v) => v.id),
  );
  for (const t of toml) {
    const c = CATALOG.find((v) => v.id === t.id)!;
    assert.deepEqual(c.principals, t.principals ?? [], `${t.id} principals`);
    assert.equal(c.name, t.name, `${t.id} name`);
    assert.equal(c.url, t.url, `${t.id} url`);
    assert.deepEqual(c.principalKinds, t.principal?.kinds, `${t.id} principal kinds`);
    assert.equal(c.principalNames, t.principal?.names, `${t.id} principal names`);
    assert.deepEqual(c.partitions, t.partitions ?? [], `${t.id} partitions`);
    assert.deepEqual(c.modes, t.modes, `${t.id} modes`);
    const defaultAccessModes = t.default_level !== undefined ? t.modes : t.modes!.filter((m) => t.defaults.includes(m));
    assert.deepEqual([...c.defaultAccessModes].sort(), [...(defaultAccessModes ?? [])].sort(), `${t.id} default access`);
    assert.deepEqual(c.role, t.role === undefined ? undefined : { ...(t.role.name ? { name: t.role.name } : {}), externalId: t.role.external_id }, `${t.id} role`);
    assert.deepEqual(c.requirements, t.requirements ?? [], `${t.id} requirements`);
  }
});

test("the enums' values are the contract's literals", () => {
  assert.deepEqual(Object.values(Vendor).sort(), CATALOG.map((v) => v.id).sort());
  assert.deepEqual(Object.values(GrantMode).sort(), ['bucket-policy', 'role']);
  assert.deepEqual(Object.values(Access).sort(), ['full', 'read', 'read-write', 'write']);
  assert.equal(Vendor.SCALE_AI, 'scale-ai');
  assert.equal(GrantMode.BUCKET_POLICY, 'bucket-policy');
  assert.equal(Access.READ_WRITE, 'read-write');
});
