/**
 * A vendor profile of the vendor-grants catalog (`src/catalog/vendors.toml` in the
 * vendor-grants repository). The value is the `Vendor` property's literal.
 */
export enum Vendor {
  /** TELUS International: account 475757276268, bucket-policy mode only, default access `full`. */
  TELUS = 'telus',
  /**
   * Scale AI: account 307185671274. Role mode (the default, role `ScaleAI-Integration`, with
   * an ExternalId) or bucket-policy mode; default access: GetObject, ListBucket.
   */
  SCALE_AI = 'scale-ai',
  /**
   * VCC Interaction Content Export: the vendor's service role ARNs (`vendorPrincipals`), never
   * an account.
   * Role mode (the default; the vendor sends no external id) or bucket-policy mode.
   */
  VCC = 'vcc',
  /**
   * AlphaSense: the vendor's role ARN (`vendorPrincipals`). Bucket-policy mode (the default)
   * or role mode with an ExternalId. Requires the bucket encrypted with SSE-KMS with the
   * grant's key, Block Public Access and ACLs disabled.
   */
  ALPHASENSE = 'alphasense',
  /** Any other vendor: `vendorPrincipals` and `access` are required. */
  CUSTOM = 'custom',
}

/** How the vendor reaches the bucket (the `Mode` property). */
export enum GrantMode {
  /** Statements for the vendor's principal in the bucket policy (and key policy). */
  BUCKET_POLICY = 'bucket-policy',
  /** An IAM role in this account that the vendor assumes. */
  ROLE = 'role',
}

/** What the vendor may do with the objects (the `Access` property). */
export enum Access {
  /** ListBucket, GetObject (+ kms:Decrypt, kms:DescribeKey). */
  READ = 'read',
  /** PutObject (+ kms:GenerateDataKey*, kms:Encrypt). */
  WRITE = 'write',
  /** `read` and `write` together. */
  READ_WRITE = 'read-write',
  /**
   * `read-write` and DeleteObject (+ kms:Encrypt, Decrypt, ReEncrypt*, GenerateDataKey*,
   * DescribeKey).
   */
  FULL = 'full',
}

/**
 * The function's log filter (`RUST_LOG`). Plain `debug` and `trace` are not offered: at those
 * levels the Lambda runtime and HTTP client log the event's presigned ResponseURL.
 */
export enum ProviderLogLevel {
  /** Errors only. */
  ERROR = 'error',
  /** Warnings and errors. */
  WARN = 'warn',
  /** The default: one JSON line per event with the grant id, request type and outcome. */
  INFO = 'info',
  /** `info`, and debug for vendor-grants' own code only (`info,vendor_grants=debug`). */
  DEBUG = 'info,vendor_grants=debug',
}
