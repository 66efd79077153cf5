import { CfnResource, Duration, Stack, Token } from 'aws-cdk-lib';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';

import { ALWAYS_MANAGED_ROLE_NAMES, vendorProfile } from './catalog';
import { VendorGrantsProvider } from './provider';
import { Access, GrantMode, Vendor } from './types';
import { GrantPropertyMap, checkGrantProperties, glob, partitionOfRegion } from './validation';

/** Properties of a {@link VendorGrant}. */
export interface VendorGrantProps {
  /**
   * The provider that handles the grant (its `serviceToken`). Give exactly one of `provider`
   * and `serviceToken`. With a provider, synth also checks `roleName` against its
   * `roleNamePattern` and the vendor and principals against its allow-lists.
   *
   * @default - `serviceToken` must be given
   */
  readonly provider?: VendorGrantsProvider;

  /**
   * The ServiceToken of a vendor-grants deployment elsewhere, e.g.
   * `Fn.importValue('vendor-grants-ServiceToken')`. Give exactly one of `provider` and
   * `serviceToken`.
   *
   * @default - `provider` must be given
   */
  readonly serviceToken?: string;

  /** The vendor profile (`Vendor`). */
  readonly vendor: Vendor;

  /** The bucket the vendor gets access to (`BucketName`); it must be in the provider's account and region. */
  readonly bucket: s3.IBucket;

  /**
   * The customer-managed key that encrypts the bucket (`KmsKeyArn`); granted to the vendor.
   * Required for AlphaSense.
   *
   * @default no key
   */
  readonly key?: kms.IKey;

  /**
   * How the vendor reaches the bucket (`Mode`).
   *
   * @default the vendor's default: role for Scale AI and VCC, bucket-policy for the others
   */
  readonly mode?: GrantMode;

  /**
   * What the vendor may do (`Access`). Required for `Vendor.CUSTOM`.
   *
   * @default what the vendor's own guide asks for
   */
  readonly access?: Access;

  /**
   * Limit objects and listing to this key prefix (`Prefix`), e.g. `datasets/`. No wildcards,
   * policy variables, quotes, `..` segments or leading `/`, and never blank (leave it out for the
   * whole bucket). It matches every key that starts with it: end it with `/` for a folder
   * (`data` also matches `data-secret/`).
   *
   * @default the whole bucket
   */
  readonly prefix?: string;

  /**
   * The vendor's principals (`VendorPrincipal`), of the kind its guide names: VCC its service
   * role ARNs, AlphaSense its role ARN, custom account ids or IAM ARNs. Required for VCC,
   * AlphaSense and custom vendors; not allowed for TELUS and Scale AI, whose principals are fixed.
   * At most 20.
   *
   * @default the vendor's fixed principal
   */
  readonly vendorPrincipals?: string[];

  /**
   * The external id the vendor sends when it assumes the role (`ExternalId`): role mode only,
   * required except for VCC, whose guide has none. 2 to 1224 characters of letters, digits and
   * `_+=,.@:/-`. Pass it as a NoEcho parameter (`CfnParameter.valueAsString`), not a literal.
   *
   * @default none
   */
  readonly externalId?: string;

  /**
   * The role's name in role mode (`RoleName`), created at the IAM path `/vendor-grants/`.
   *
   * @default the vendor's documented name (`ScaleAI-Integration`) or `VendorGrant-<vendor>-<grant id>`
   */
  readonly roleName?: string;

  /**
   * How long CloudFormation waits for the function's answer before failing the resource
   * (`ServiceTimeout`): whole seconds from 1 to 3600.
   *
   * @default CloudFormation's default, one hour
   */
  readonly serviceTimeout?: Duration;
}

/**
 * A `Custom::VendorGrant`: gives a data vendor access to an S3 bucket (and its KMS key) the way
 * the vendor's guide asks, through statements the grant owns in the bucket and key policies,
 * or through an IAM role the vendor assumes. Literal properties are checked at synth time with
 * the function's own rules and messages.
 *
 * The resource depends on the bucket (its bucket policy included) and the key, so it is deleted
 * before them.
 */
export class VendorGrant extends Construct {
  /** The underlying Custom::VendorGrant resource. */
  public readonly resource: CfnResource;

  constructor(scope: Construct, id: string, props: VendorGrantProps) {
    super(scope, id);
    const properties = renderGrantProperties(props);
    checkGrantProps(this, props, properties);

    this.resource = new CfnResource(this, 'Resource', {
      type: 'Custom::VendorGrant',
      properties: { ServiceToken: serviceTokenOf(props), ...properties },
    });
    // Deleted before the bucket (and its BucketPolicy) and the key, created after them.
    this.node.addDependency(props.bucket);
    if (props.key !== undefined) this.node.addDependency(props.key);
    if (props.provider !== undefined) this.node.addDependency(props.provider);
  }

  /** The grant's id (16 lowercase hex digits; also inside the PhysicalResourceId). */
  public get grantId(): string {
    return this.attribute('GrantId');
  }

  /**
   * The role's ARN in role mode, or empty: `arn:aws:iam::ACCOUNT:role/ScaleAI-Integration` for
   * Scale's documented role (at the path Scale assumes it at), else
   * `arn:aws:iam::ACCOUNT:role/vendor-grants/NAME`.
   */
  public get roleArn(): string {
    return this.attribute('RoleArn');
  }

  /** Every Sid the grant owns, comma-separated. */
  public get statementIds(): string {
    return this.attribute('StatementIds');
  }

  /** `arn:aws:s3:::BUCKET`. */
  public get bucketArn(): string {
    return this.attribute('BucketArn');
  }

  /** The resolved key ARN, or empty. */
  public get kmsKeyArn(): string {
    return this.attribute('KmsKeyArn');
  }

  /** The principal(s) granted, comma-separated. */
  public get vendorPrincipal(): string {
    return this.attribute('VendorPrincipal');
  }

  /** The region of the bucket and key. */
  public get region(): string {
    return this.attribute('Region');
  }

  private attribute(name: string): string {
    return Token.asString(this.resource.getAtt(name));
  }
}

function serviceTokenOf(props: VendorGrantProps): string {
  return props.provider !== undefined ? props.provider.serviceToken : props.serviceToken!;
}

/**
 * The Custom::VendorGrant Properties a grant with `props` emits, without ServiceToken: exactly
 * CONTRACT.md's names, properties not given left out. Internal (tests build rejections.json
 * from it).
 */
export function renderGrantProperties(props: VendorGrantProps): GrantPropertyMap {
  const out: GrantPropertyMap = {
    Vendor: props.vendor,
    BucketName: props.bucket.bucketName,
  };
  if (props.key !== undefined) out.KmsKeyArn = props.key.keyArn;
  if (props.mode !== undefined) out.Mode = props.mode;
  if (props.access !== undefined) out.Access = props.access;
  if (props.prefix !== undefined) out.Prefix = props.prefix;
  const principal = renderPrincipals(props.vendorPrincipals);
  if (principal !== undefined) out.VendorPrincipal = principal;
  if (props.externalId !== undefined) out.ExternalId = props.externalId;
  if (props.roleName !== undefined) out.RoleName = props.roleName;
  if (props.serviceTimeout !== undefined) {
    out.ServiceTimeout = props.serviceTimeout.isUnresolved()
      ? props.serviceTimeout.toSeconds({ integral: false })
      : props.serviceTimeout.toMilliseconds() / 1000;
  }
  return out;
}

/**
 * `VendorPrincipal`: one literal principal as a string; several, a list token, or one that
 * holds a comma (the function splits a string on commas, never a list's items), as a list.
 */
function renderPrincipals(principals: string[] | undefined): unknown {
  if (principals === undefined) return undefined;
  if (Token.isUnresolved(principals)) return principals; // an encoded list token
  if (principals.length === 0) return undefined;
  if (principals.length === 1 && !Token.isUnresolved(principals[0]) && !principals[0].includes(',')) {
    return principals[0];
  }
  return principals;
}

/** The synth-time checks: CDK-only ones first, then the function's rules. */
function checkGrantProps(scope: Construct, props: VendorGrantProps, properties: GrantPropertyMap): void {
  if (props.provider !== undefined && props.serviceToken !== undefined) {
    throw new Error('give either provider or serviceToken, not both');
  }
  if (props.provider === undefined && props.serviceToken === undefined) {
    throw new Error('give provider (a VendorGrantsProvider) or serviceToken (e.g. Fn.importValue(\'vendor-grants-ServiceToken\'))');
  }
  if (props.serviceTimeout !== undefined && !props.serviceTimeout.isUnresolved()) {
    const seconds = props.serviceTimeout.toMilliseconds() / 1000;
    if (!Number.isInteger(seconds) || seconds < 1 || seconds > 3600) {
      throw new Error(
        `serviceTimeout must be a whole number of seconds from 1 to 3600 (CloudFormation's ServiceTimeout), got ${seconds} seconds`,
      );
    }
  }

  const region = Stack.of(scope).region;
  const partition = Token.isUnresolved(region) ? undefined : partitionOfRegion(region);
  const provider = props.provider;
  const { ServiceTimeout: _timeout, ...grantProperties } = properties;
  checkGrantProperties(
    grantProperties,
    partition,
    provider === undefined
      ? undefined
      : { allowedVendors: provider.allowedVendors, allowedPrincipals: provider.allowedPrincipals },
  );

  // The role's name against what the provider's execution role may manage (CDK only: the
  // function would get AccessDenied from IAM).
  if (provider !== undefined && !Token.isUnresolved(provider.roleNamePattern)) {
    const vendor = vendorProfile(props.vendor);
    const mode = props.mode ?? vendor?.modes[0];
    const name = props.roleName;
    if (mode === GrantMode.ROLE && name !== undefined && !Token.isUnresolved(name) && name.trim() !== '') {
      const patterns = [...new Set([...ALWAYS_MANAGED_ROLE_NAMES, provider.roleNamePattern])];
      if (!patterns.some((p) => glob(p, name))) {
        throw new Error(
          `RoleName ${name} is not a name the provider may manage: its execution role may create and change only roles named ${patterns.join(', ')} (roleNamePattern ${provider.roleNamePattern}); set roleNamePattern on the VendorGrantsProvider, or leave roleName out`,
        );
      }
    }
  }
}
