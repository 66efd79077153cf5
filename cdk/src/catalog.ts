/**
 * What synth-time checks need of the vendor catalog (`src/catalog/vendors.toml` of the
 * vendor-grants repository): modes, whether Access has a default, fixed principals, the role's
 * name and external id, and bucket requirements. Internal: not exported from the package.
 *
 * A test (test/catalog.test.ts) reads vendors.toml and checks this table against it.
 */

/** Whether the vendor sends an ExternalId when it assumes the role. */
export type ExternalIdPolicy = 'required' | 'none';

/** The parts of a vendor profile the property checks use. */
export interface VendorProfile {
  readonly id: string;
  /** Fixed principals; empty: VendorPrincipal is required. */
  readonly principals: readonly string[];
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
    principals: ['475757276268'],
    modes: ['bucket-policy'],
    defaultAccessModes: ['bucket-policy'],
    requirements: [],
  },
  {
    id: 'scale-ai',
    principals: ['307185671274'],
    modes: ['role', 'bucket-policy'],
    defaultAccessModes: ['role', 'bucket-policy'],
    role: { name: 'ScaleAI-Integration', externalId: 'required' },
    requirements: [],
  },
  {
    id: 'vcc',
    principals: [],
    modes: ['role', 'bucket-policy'],
    defaultAccessModes: ['role', 'bucket-policy'],
    role: { externalId: 'none' },
    requirements: [],
  },
  {
    id: 'alphasense',
    principals: [],
    modes: ['bucket-policy', 'role'],
    defaultAccessModes: ['bucket-policy', 'role'],
    role: { externalId: 'required' },
    requirements: ['sse-kms-with-key', 'block-public-access', 'acls-disabled'],
  },
  {
    id: 'custom',
    principals: [],
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

/** The catalog's vendor ids, comma-separated as the function lists them. */
export function vendorIds(): string {
  return CATALOG.map((v) => v.id).join(', ');
}

/** The role names the deploy template always lets the function manage, besides RoleNamePattern. */
export const ALWAYS_MANAGED_ROLE_NAMES: readonly string[] = ['VendorGrant-*', 'ScaleAI-Integration'];

/** The IAM path of every role the function creates (src/grant/plan.rs ROLE_PATH). */
export const ROLE_PATH = '/vendor-grants/';
