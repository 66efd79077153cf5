/**
 * Synth-time checks of a Custom::VendorGrant's Properties: the same rules, in the same order and
 * with the same messages, as the function's (`src/grant/properties.rs`, `src/policy/lint.rs`
 * `check_prefix` and `check_principal`, `src/grant/allowed.rs`), so a user reads the same text at
 * synth time as from CloudFormation. Values that are tokens (unresolved at synth time) pass
 * through unchecked. Internal: not exported from the package.
 */
import { Token } from 'aws-cdk-lib';

import { PrincipalKind, guideNames, vendorIds, vendorProfile } from './catalog';

/** The properties as the construct emits them (CONTRACT.md's names), without ServiceToken. */
export type GrantPropertyMap = Record<string, unknown>;

/** Settings of the provider, when the grant's provider is known at synth time. */
export interface ProviderSettings {
  /** The provider's allowedVendors (`VENDOR_GRANTS_ALLOWED_VENDORS`), if set. */
  readonly allowedVendors?: readonly string[];
  /** The provider's allowedPrincipals (`VENDOR_GRANTS_ALLOWED_PRINCIPALS`), if set. */
  readonly allowedPrincipals?: readonly string[];
}

/** What a string looks like in Rust's `{:?}` (Debug) formatting, as the function quotes values. */
export function rustDebug(value: string): string {
  let out = '"';
  for (const ch of value) {
    const code = ch.codePointAt(0)!;
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (ch === '\0') out += '\\0';
    else if (code < 0x20 || (code >= 0x7f && code <= 0x9f)) out += `\\u{${code.toString(16)}}`;
    else out += ch;
  }
  return out + '"';
}

function fail(message: string): never {
  throw new Error(message);
}

const missing = (property: string, hint: string): never =>
  fail(`property ${property} is required: ${hint}`);

const invalid = (property: string, value: string, valid: string): never =>
  fail(`${property} ${rustDebug(value)} is not valid; expected ${valid}`);

const unresolved = (value: unknown): boolean => value !== undefined && Token.isUnresolved(value);

/** A literal string property, or undefined when absent or a token. */
function literal(props: GrantPropertyMap, name: string): string | undefined {
  const value = props[name];
  if (value === undefined || unresolved(value)) return undefined;
  return String(value);
}

/** `non_empty` of properties.rs: blank means absent. */
function nonEmpty(value: string | undefined): string | undefined {
  return value !== undefined && value.trim() !== '' ? value : undefined;
}

/** Rust's `char::is_ascii_alphanumeric`. */
const isAsciiAlnum = (c: string): boolean => /^[A-Za-z0-9]$/.test(c);

/** `is_account_id` of policy/canonical.rs. */
const isAccountId = (v: string): boolean => /^[0-9]{12}$/.test(v);

/** `Arn::parse` of policy/arn.rs: the five fields and the resource (which may hold colons). */
function parseArn(text: string):
  | { partition: string; service: string; region: string; account: string; resource: string }
  | undefined {
  const parts = text.split(':');
  if (parts.length < 6 || parts[0] !== 'arn') return undefined;
  return {
    partition: parts[1],
    service: parts[2],
    region: parts[3],
    account: parts[4],
    resource: parts.slice(5).join(':'),
  };
}

/** The partition of a region (`partition_of_region` of policy/lint.rs). */
export function partitionOfRegion(region: string): string {
  if (region.startsWith('cn-')) return 'aws-cn';
  if (region.startsWith('us-gov-')) return 'aws-us-gov';
  if (region.startsWith('us-iso-')) return 'aws-iso';
  if (region.startsWith('us-isob-')) return 'aws-iso-b';
  if (region.startsWith('eusc-')) return 'aws-eusc';
  return 'aws';
}

/**
 * `is_blank` of properties.rs: only white space (Rust's `char::is_whitespace`, Unicode's
 * White_Space: U+3000 and NBSP included) and zero-width characters.
 */
export function isBlank(value: string): boolean {
  return /^[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\u200b\u200c\u200d\u2060\ufeff\u180e]*$/u.test(value);
}

/** `PrincipalKind::of` of src/catalog/mod.rs: undefined when `value` is no principal at all. */
export function principalKind(value: string): PrincipalKind | undefined {
  if (isAccountId(value)) return 'account';
  const arn = parseArn(value);
  if (!arn) return undefined;
  if (arn.service === 'iam' && arn.resource === 'root') return 'account';
  if (arn.service === 'iam' && arn.resource.startsWith('role/')) return 'role';
  if (arn.service === 'iam' && arn.resource.startsWith('user/')) return 'user';
  if (arn.service === 'sts' && arn.resource.startsWith('assumed-role/')) return 'assumed-role';
  return undefined;
}

/** `PrincipalKind::describe`. */
function describeKind(kind: PrincipalKind): string {
  switch (kind) {
    case 'account':
      return 'a whole account';
    case 'role':
      return 'a role';
    case 'user':
      return 'a user';
    case 'assumed-role':
      return 'a role session';
  }
}

/** `check_bucket_name` of properties.rs. */
export function checkBucketName(name: string): void {
  const bad = (why: string) => invalid('BucketName', name, `a bucket name that ${why}`);
  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes < 3 || bytes > 63) bad('is 3 to 63 characters long');
  if (!/^[a-z0-9.-]*$/.test(name)) bad('has only lowercase letters, digits, dots and hyphens');
  if (!isAsciiAlnum(name[0]) || !isAsciiAlnum(name[name.length - 1])) {
    bad('starts and ends with a letter or digit');
  }
  if (name.includes('..')) bad('has no two adjacent dots');
  const parts = name.split('.');
  // Rust's u8::from_str: optional '+', then decimal digits, at most 255.
  if (parts.length === 4 && parts.every((p) => /^\+?[0-9]+$/.test(p) && Number(p) <= 255)) {
    bad('is not an IP address');
  }
}

/** `check_key_reference` of properties.rs. */
export function checkKeyReference(value: string): void {
  const bad = (): never =>
    invalid(
      'KmsKeyArn',
      value,
      'a key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID), an alias ARN ' +
        '(arn:aws:kms:REGION:ACCOUNT:alias/NAME), a key id or alias/NAME',
    );
  let resource = value;
  if (value.startsWith('arn:')) {
    const arn = parseArn(value);
    if (!arn || arn.service !== 'kms' || arn.region === '' || !isAccountId(arn.account)) bad();
    resource = arn!.resource;
  }
  const idOk = (id: string) => id.length > 0 && id.length <= 64 && /^[A-Za-z0-9-]+$/.test(id);
  const aliasOk = (name: string) =>
    name.length > 0 &&
    Buffer.byteLength(name, 'utf8') <= 250 &&
    !name.startsWith('aws/') &&
    /^[A-Za-z0-9/_-]+$/.test(name);
  let ok: boolean;
  if (resource.startsWith('key/')) ok = value.startsWith('arn:') && idOk(resource.slice(4));
  else if (resource.startsWith('alias/')) ok = aliasOk(resource.slice(6));
  else ok = !value.startsWith('arn:') && idOk(resource);
  if (!ok) bad();
}

/** `check_prefix` of policy/lint.rs. */
export function checkPrefix(value: string): void {
  const bad = (reason: string): never => fail(`Prefix ${rustDebug(value)} is not valid: ${reason}`);
  if (Buffer.byteLength(value, 'utf8') > 1024) bad('it is longer than an S3 key may be (1024 bytes)');
  if (value.includes('*') || value.includes('?')) {
    bad('`*` and `?` are wildcards in a policy; give the literal prefix (vendor-grants adds the `*`)');
  }
  if (value.includes('${')) bad('`${` starts a policy variable');
  if (value.split('/').some((segment) => segment === '..')) {
    bad('`..` segments are not allowed (S3 keys are literal)');
  }
  if (value.startsWith('/')) {
    bad(`S3 object keys do not start with \`/\`; write ${rustDebug(value.replace(/^\/+/, ''))}`);
  }
  if (value.includes('"') || value.includes("'")) bad('quotes are not allowed');
  if (/[\u0000-\u001f\u007f-\u009f]/.test(value)) bad('control characters are not allowed');
}

/** `check_role_name` of properties.rs. */
export function checkRoleName(name: string): void {
  if (name.length === 0 || Buffer.byteLength(name, 'utf8') > 64 || !/^[A-Za-z0-9_+=,.@-]+$/.test(name)) {
    invalid('RoleName', name, '1 to 64 characters of letters, digits and _+=,.@-');
  }
}

/** [path/]name of IAM (`is_iam_path_name` of policy/lint.rs). */
function isIamPathName(rest: string): boolean {
  return (
    rest.length > 0 &&
    !rest.endsWith('/') &&
    Buffer.byteLength(rest, 'utf8') <= 512 &&
    rest.split('/').every((seg) => /^[A-Za-z0-9+=,.@_-]+$/.test(seg))
  );
}

/**
 * `check_principal` of policy/lint.rs. `partition` is the grant's (from the stack's region);
 * undefined when the region is not known at synth time, and then the partition is not compared.
 */
export function checkPrincipal(property: string, value: string, partition: string | undefined): void {
  const bad = (reason: string): never =>
    fail(`${property} ${rustDebug(value)} is not a valid principal: ${reason}`);
  if (value.includes('*') || value.includes('?')) {
    bad('a wildcard would grant the bucket to anyone; name the vendor\'s account or role');
  }
  if (isAccountId(value)) return;
  const arn = parseArn(value);
  if (!arn) {
    bad('expected a 12-digit account id or an IAM ARN such as arn:aws:iam::123456789012:role/Name');
  }
  const { partition: arnPartition, service, region, account, resource } = arn!;
  if (partition !== undefined && arnPartition !== partition) {
    bad(`it is in partition ${rustDebug(arnPartition)}, but this grant is in ${rustDebug(partition)}`);
  }
  const shapes =
    'expected arn:PARTITION:iam::ACCOUNT:root, :role/NAME, :user/NAME or arn:PARTITION:sts::ACCOUNT:assumed-role/ROLE/SESSION';
  if (service !== 'iam' && service !== 'sts') bad(shapes);
  if (region !== '') bad('IAM ARNs have no region');
  if (!isAccountId(account)) bad(`the account ${rustDebug(account)} is not a 12-digit account id`);
  let ok: boolean;
  if (service === 'iam') {
    ok =
      resource === 'root' ||
      (resource.startsWith('role/') && isIamPathName(resource.slice(5))) ||
      (resource.startsWith('user/') && isIamPathName(resource.slice(5)));
  } else {
    const rest = resource.startsWith('assumed-role/') ? resource.slice('assumed-role/'.length) : undefined;
    const slash = rest === undefined ? -1 : rest.indexOf('/');
    ok = slash >= 0 && isIamPathName(rest!.slice(0, slash)) && isIamPathName(rest!.slice(slash + 1));
  }
  if (!ok) bad(shapes);
}

/**
 * `VendorPrincipal` as the function reads it: a string is split on commas, a list is taken item
 * by item; blank items are dropped. `undefined` when the value is a token (a list token, or a
 * string token that may hold several), and then nothing about the principals is checked.
 */
function principalList(value: unknown): { literals: string[]; count: number } | undefined {
  if (value === undefined) return { literals: [], count: 0 };
  if (unresolved(value)) {
    if (Array.isArray(value) || typeof value === 'string') return undefined;
  }
  if (typeof value === 'string') {
    const items = value.split(',').map((s) => s.trim()).filter((s) => s !== '');
    return { literals: items, count: items.length };
  }
  if (Array.isArray(value)) {
    const literals: string[] = [];
    let count = 0;
    for (const item of value) {
      if (unresolved(item)) {
        count += 1;
        continue;
      }
      const s = String(item).trim();
      if (s !== '') {
        literals.push(s);
        count += 1;
      }
    }
    return { literals, count };
  }
  return undefined;
}

/**
 * Checks the properties as the function would, in the function's order, so the first error is
 * the one the function would report. Throws an Error with the function's message.
 *
 * @param props the Custom::VendorGrant Properties (without ServiceToken)
 * @param partition the grant's partition when the stack's region is known
 * @param settings the provider's allow-lists, when the provider is known
 */
export function checkGrantProperties(
  props: GrantPropertyMap,
  partition?: string,
  settings?: ProviderSettings,
): void {
  // Vendor: required, and must name a vendor in the catalog.
  if (unresolved(props.Vendor)) return; // nothing else can be judged without the vendor
  const vendorId = nonEmpty(literal(props, 'Vendor'));
  if (vendorId === undefined) missing('Vendor', `one of: ${vendorIds()}`);
  const vendor = vendorProfile(vendorId!);
  if (!vendor) invalid('Vendor', vendorId!, `one of: ${vendorIds()}`);
  const v = vendor!;

  // BucketName: required, and a valid S3 bucket name.
  if (!unresolved(props.BucketName)) {
    const bucket = nonEmpty(literal(props, 'BucketName'));
    if (bucket === undefined) missing('BucketName', 'the name of an existing S3 bucket in this account');
    checkBucketName(bucket!);
  }

  // KmsKeyArn: a key ARN, alias ARN, key id or alias name.
  const keyGiven = props.KmsKeyArn !== undefined && (unresolved(props.KmsKeyArn) || nonEmpty(literal(props, 'KmsKeyArn')) !== undefined);
  const key = nonEmpty(literal(props, 'KmsKeyArn'));
  if (key !== undefined) checkKeyReference(key);

  // Mode: the vendor's default when absent; otherwise a mode the vendor supports.
  if (unresolved(props.Mode)) return;
  let mode = v.modes[0];
  const givenMode = nonEmpty(literal(props, 'Mode'));
  if (givenMode !== undefined) {
    const valid = v.modes.join(', ');
    if (givenMode !== 'bucket-policy' && givenMode !== 'role') invalid('Mode', givenMode, `one of: ${valid}`);
    if (!v.modes.includes(givenMode)) invalid('Mode', givenMode, `vendor ${v.id} supports only: ${valid}`);
    mode = givenMode;
  }

  // Access: a known level, required when the vendor has no default for the mode.
  if (!unresolved(props.Access)) {
    const access = nonEmpty(literal(props, 'Access'));
    if (access !== undefined && !['read', 'write', 'read-write', 'full'].includes(access)) {
      invalid('Access', access, 'one of: read, write, read-write, full');
    }
    if (access === undefined && !v.defaultAccessModes.includes(mode)) {
      missing('Access', `vendor ${v.id} has no default access; give read, write, read-write or full`);
    }
  }

  // Prefix: never blank (refused, not read as the whole bucket); no wildcards, variables, `..`,
  // leading `/`, quotes or control characters.
  const prefix = literal(props, 'Prefix');
  if (prefix !== undefined) {
    if (isBlank(prefix)) {
      invalid(
        'Prefix',
        prefix,
        'a key prefix such as "exports/"; a blank Prefix is refused, never read as the whole bucket: to grant the whole bucket, omit Prefix',
      );
    }
    checkPrefix(prefix);
  }

  // VendorPrincipal: required exactly when the vendor has no fixed principal; at most 20.
  const principals = principalList(props.VendorPrincipal);
  if (principals !== undefined) {
    const needs = v.principals.length === 0;
    if (needs && principals.count === 0) {
      missing(
        'VendorPrincipal',
        `vendor ${v.id} gives each customer its principal, or a list of them: ${guideNames(v)}`,
      );
    }
    if (!needs && principals.count > 0 && principals.literals.length === principals.count) {
      invalid(
        'VendorPrincipal',
        principals.literals.join(','),
        `vendor ${v.id}'s principal is fixed (${v.principals.join(', ')}); remove VendorPrincipal or use Vendor: custom`,
      );
    }
    if (principals.count > 20) {
      invalid('VendorPrincipal', `${principals.count} principals`, 'at most 20 principals');
    }
    // Each of the kind the vendor's guide names; in role mode never a whole account when the
    // vendor sends no external id (`check_principal_kinds` of properties.rs).
    for (const p of principals.literals) {
      const kind = principalKind(p);
      if (kind === undefined) continue;
      if (!v.principalKinds.includes(kind)) {
        fail(`VendorPrincipal ${rustDebug(p)} is ${describeKind(kind)}, but ${guideNames(v)}; give that instead`);
      }
      if (mode === 'role' && kind === 'account' && v.role?.externalId === 'none') {
        fail(
          `VendorPrincipal ${rustDebug(p)} is a whole account, and vendor ${v.id} sends no external id when it assumes the role: every user and role of that account could assume it; name the vendor's role ARN instead`,
        );
      }
    }
  }

  // ExternalId: only in role mode, required when the vendor sends one; 2-1224 of [\w+=,.@:/-].
  // (A token may resolve to "", which the function takes as absent: it is not judged.)
  if (!unresolved(props.ExternalId)) {
    const raw = literal(props, 'ExternalId');
    const externalId = raw !== undefined && raw !== '' ? raw : undefined;
    const sends = v.role === undefined ? undefined : v.role.externalId === 'required';
    if (mode === 'bucket-policy' && externalId !== undefined) {
      fail('ExternalId is given, but it applies only with Mode: role; remove it');
    }
    if (mode === 'role' && externalId === undefined && sends === true) {
      missing('ExternalId', `role mode for vendor ${v.id} needs the external id the vendor gave you`);
    }
    if (mode === 'role' && externalId !== undefined && sends === false) {
      fail(`ExternalId is given, but vendor ${v.id} sends no external id when it assumes the role; remove it`);
    }
    if (externalId !== undefined) {
      const len = [...externalId].length;
      if (len < 2 || len > 1224 || !/^[A-Za-z0-9_+=,.@:/-]+$/.test(externalId)) {
        fail(
          `ExternalId is not valid (${len} characters): it must be 2 to 1224 characters of letters, digits and _+=,.@:/-`,
        );
      }
    }
  }

  // RoleName: only with Mode: role, and a valid IAM role name.
  const roleName = nonEmpty(literal(props, 'RoleName'));
  if (roleName !== undefined) {
    if (mode !== 'role') invalid('RoleName', roleName, 'RoleName applies only with Mode: role; remove it');
    checkRoleName(roleName);
  }

  // KmsKeyArn: required for vendors that need SSE-KMS with a customer-managed key.
  if (v.requirements.includes('sse-kms-with-key') && !keyGiven) {
    missing(
      'KmsKeyArn',
      `vendor ${v.id} requires the bucket to be encrypted with a customer-managed KMS key; give that key's ARN`,
    );
  }

  // Before writing: the provider's allow-lists (src/lifecycle/checks.rs check_allowed).
  if (settings !== undefined) checkAllowed(props, settings);

  // The vendor's fixed principals exist in their partition only (src/grant/plan.rs `basis`).
  if (partition !== undefined && v.partitions.length > 0 && !v.partitions.includes(partition)) {
    fail(
      `Vendor ${v.id}: ${v.name}'s principal (${v.principals.join(', ')}) exists in the ${v.partitions.join(', ')} partition only, and this grant is in ${partition}; use Vendor: custom with VendorPrincipal naming the vendor's principal in ${partition} (and Access)`,
    );
  }

  // The principals themselves, as the plan checks them (src/grant/plan.rs `principals`).
  if (principals !== undefined && v.principals.length === 0) {
    for (const p of principals.literals) checkPrincipal('VendorPrincipal', p, partition);
  }
}

/** `glob` of src/grant/allowed.rs: `*` any run of characters, `?` any one. */
export function glob(pattern: string, text: string): boolean {
  let p = 0;
  let t = 0;
  let star: [number, number] | undefined;
  while (t < text.length) {
    const c = pattern[p];
    if (c === '*') {
      star = [p, t];
      p += 1;
    } else if (c !== undefined && (c === '?' || c === text[t])) {
      p += 1;
      t += 1;
    } else if (star) {
      p = star[0] + 1;
      t = star[1] + 1;
      star = [star[0], star[1] + 1];
    } else {
      return false;
    }
  }
  return [...pattern.slice(p)].every((c) => c === '*');
}

/** `principal_matches` of src/grant/allowed.rs. */
export function principalMatches(pattern: string, principal: string): boolean {
  const value = principal.trim();
  const accountOf = (p: string): string | undefined => (isAccountId(p) ? p : parseArn(p)?.account);
  if (isAccountId(pattern)) return accountOf(value) === pattern;
  const asArn = isAccountId(value) ? `arn:${parseArn(pattern)?.partition ?? 'aws'}:iam::${value}:root` : value;
  return glob(pattern, asArn);
}

/**
 * The provider's allow-lists (`Allowed::check` of src/grant/allowed.rs), with the function's
 * message (lifecycle Error::NotAllowed).
 */
export function checkAllowed(props: GrantPropertyMap, settings: ProviderSettings): void {
  const vendors = (settings.allowedVendors ?? []).map((s) => s.trim()).filter((s) => s !== '');
  const patterns = (settings.allowedPrincipals ?? []).map((s) => s.trim()).filter((s) => s !== '');
  if (vendors.some((s) => unresolved(s)) || patterns.some((s) => unresolved(s))) return;
  const vendor = literal(props, 'Vendor');
  if (vendor !== undefined && vendors.length > 0 && !vendors.includes(vendor)) {
    fail(
      `AllowedVendors (VENDOR_GRANTS_ALLOWED_VENDORS) does not allow Vendor ${vendor}; allowed: ${vendors.join(', ')}`,
    );
  }
  const principals = principalList(props.VendorPrincipal);
  if (principals !== undefined && patterns.length > 0) {
    for (const principal of principals.literals) {
      if (!patterns.some((p) => principalMatches(p, principal))) {
        fail(
          `AllowedPrincipals (VENDOR_GRANTS_ALLOWED_PRINCIPALS) does not allow VendorPrincipal ${principal}; allowed: ${patterns.join(', ')}`,
        );
      }
    }
  }
}
