/**
 * What synth-time checks need of the vendor catalog (`src/catalog/vendors.toml` of the
 * vendor-grants repository): modes, whether Access has a default, fixed principals, the role's
 * name and external id, and bucket requirements. Internal: not exported from the package.
 *
 * A test (test/catalog.test.ts) reads vendors.toml and checks this table against it.
 */

/** Whether the vendor sends an ExternalId when it assumes the role. */
export type ExternalIdPolicy = 'required' | 'none';

/** A kind of principal a vendor's guide may name (`PrincipalKind` of src/catalog/mod.rs). */
export type PrincipalKind = 'account' | 'role' | 'user' | 'assumed-role';

/** The parts of a vendor profile the property checks use. */
export interface VendorProfile {
  readonly id: string;
  /** The vendor's name, as refusals quote its guide ("AlphaSense's guide names ..."). */
  readonly name: string;
  /** Where the vendor's guide is published; empty for custom. */
  readonly url: string;
  /** Fixed principals; empty: VendorPrincipal is required. */
  readonly principals: readonly string[];
  /** The kinds of principal the guide names; a VendorPrincipal of another kind is refused. */
  readonly principalKinds: readonly PrincipalKind[];
  /** The guide's words for that principal, quoted in refusals. */
  readonly principalNames: string;
  /** The partitions the fixed principals exist in; empty: any. */
  readonly partitions: readonly string[];
  /** Allowed modes, the default first. */
  readonly modes: readonly string[];
  /** The modes for which the vendor's guide gives a default Access (or all, with a default level). */
  readonly defaultAccessModes: readonly string[];
  /** Role mode: the documented role name, and whether the vendor sends an external id. */
  readonly role?: { readonly name?: string; readonly externalId: ExternalIdPolicy };
  /** Bucket settings the vendor needs: sse-kms-with-key, block-public-access, acls-disabled. */
  readonly requirements: readonly string[];
}

/** The built-in catalog, in the order of vendors.toml (the order the function lists ids in). */
export const CATALOG: readonly VendorProfile[] = [
  {
    id: 'telus',
    name: 'TELUS International',
    url: 'https://annotationdocs.telusinternational.com/secure-attachment-access/attachments',
    principals: ['475757276268'],
    principalKinds: ['account'],
    principalNames: 'an account: 475757276268',
    partitions: ['aws'],
    modes: ['bucket-policy'],
    defaultAccessModes: ['bucket-policy'],
    requirements: [],
  },
  {
    id: 'scale-ai',
    name: 'Scale AI',
    url: 'https://scale.com/docs/aws-s3',
    principals: ['307185671274'],
    principalKinds: ['account'],
    principalNames: 'an account: 307185671274',
    partitions: ['aws'],
    modes: ['role', 'bucket-policy'],
    defaultAccessModes: ['role', 'bucket-policy'],
    role: { name: 'ScaleAI-Integration', externalId: 'required' },
    requirements: [],
  },
  {
    id: 'vcc',
    name: 'VCC Interaction Content Export',
    url: 'https://docs-vcc.atlassian.net/wiki/pages/diffpages.action?originalId=4355227756&pageId=4356046859',
    principals: [],
    principalKinds: ['role'],
    principalNames: 'roles: arn:aws:iam::ACCOUNT:role/NAME (its {primary-service} and {secondary-service})',
    partitions: [],
    modes: ['role', 'bucket-policy'],
    defaultAccessModes: ['role', 'bucket-policy'],
    role: { externalId: 'none' },
    requirements: [],
  },
  {
    id: 'alphasense',
    name: 'AlphaSense',
    url: 'https://dev-developer.alpha-sense.com/enterprise/how-to/client-data-encryption/bring-your-own-bucket',
    principals: [],
    principalKinds: ['role'],
    principalNames: 'a role: arn:aws:iam::ACCOUNT:role/NAME',
    partitions: [],
    modes: ['bucket-policy', 'role'],
    defaultAccessModes: ['bucket-policy', 'role'],
    role: { externalId: 'required' },
    requirements: ['sse-kms-with-key', 'block-public-access', 'acls-disabled'],
  },
  {
    id: 'custom',
    name: 'Custom vendor',
    url: '',
    principals: [],
    principalKinds: ['account', 'role', 'user', 'assumed-role'],
    principalNames: 'an account id or an IAM ARN',
    partitions: [],
    modes: ['bucket-policy', 'role'],
    defaultAccessModes: [],
    role: { externalId: 'required' },
    requirements: [],
  },
];

/** The profile of `id`, if the catalog has one. */
export function vendorProfile(id: string): VendorProfile | undefined {
  return CATALOG.find((v) => v.id === id);
}

/**
 * "AlphaSense's guide names a role: arn:aws:iam::ACCOUNT:role/NAME (URL)"; for a vendor without
 * a guide (custom), what it takes (`VendorProfile::guide_names` of src/catalog/mod.rs).
 */
export function guideNames(v: VendorProfile): string {
  if (v.url === '') return `Vendor ${v.id} takes ${v.principalNames}`;
  return `${v.name}'s guide names ${v.principalNames} (${v.url})`;
}

/** The catalog's vendor ids, comma-separated as the function lists them. */
export function vendorIds(): string {
  return CATALOG.map((v) => v.id).join(', ');
}

/** The role names the deploy template always lets the function manage, besides RoleNamePattern. */
export const ALWAYS_MANAGED_ROLE_NAMES: readonly string[] = ['VendorGrant-*', 'ScaleAI-Integration'];

/** The IAM path of every role the function creates (src/grant/plan.rs ROLE_PATH). */
export const ROLE_PATH = '/vendor-grants/';
