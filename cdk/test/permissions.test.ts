/**
 * The deploy template and the construct must not drift: cloudformation/vendor-grants.yaml is
 * parsed (short-form tags included) and the synthesized provider must grant exactly the same
 * actions, Sid by Sid, with the same effect and conditions, in the function policy and the
 * audit policy, and nothing else (no other policy, no managed policy on the role).
 */
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { Duration, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as events from 'aws-cdk-lib/aws-events';

import { VendorGrantsProvider } from '../src';
import { AUDIT_POLICY_NAME, FUNCTION_POLICY_NAME } from '../src/permissions';
import { REPO_ROOT, fakeAssets, list, loadTemplate, newStack, realAssets, resourcesOfType } from './helpers';

const TEMPLATE = path.join(REPO_ROOT, 'cloudformation', 'vendor-grants.yaml');

interface StatementShape {
  effect: string;
  actions: string[];
  conditions: unknown;
}

/** Sid -> effect, sorted actions and conditions of a policy document. */
function bySid(document: any): Map<string, StatementShape> {
  const out = new Map<string, StatementShape>();
  for (const s of list<any>(document.Statement)) {
    assert.ok(typeof s.Sid === 'string', `a statement without Sid: ${JSON.stringify(s)}`);
    assert.ok(!out.has(s.Sid), `Sid ${s.Sid} twice`);
    out.set(s.Sid, {
      effect: s.Effect,
      actions: [...list<string>(s.Action)].sort(),
      conditions: s.Condition ?? null,
    });
  }
  return out;
}

function assertSameStatements(what: string, fromTemplate: Map<string, StatementShape>, synthesized: Map<string, StatementShape>) {
  assert.deepEqual(
    [...synthesized.keys()].sort(),
    [...fromTemplate.keys()].sort(),
    `${what}: the Sids differ between cloudformation/vendor-grants.yaml and the construct`,
  );
  for (const [sid, expected] of fromTemplate) {
    const got = synthesized.get(sid)!;
    assert.deepEqual(got.actions, expected.actions, `${what} ${sid}: the actions differ`);
    assert.equal(got.effect, expected.effect, `${what} ${sid}: the effect differs`);
    assert.deepEqual(got.conditions, expected.conditions, `${what} ${sid}: the conditions differ`);
  }
}

/** The synthesized inline policy of the execution role named `name`. */
function synthesizedPolicy(template: any, name: string): any {
  const policies = resourcesOfType(template, 'AWS::IAM::RolePolicy').filter(([, r]) => r.Properties.PolicyName === name);
  assert.equal(policies.length, 1, `one policy named ${name}`);
  return policies[0][1].Properties;
}

describe('the construct grants what cloudformation/vendor-grants.yaml grants', () => {
  before(() => fakeAssets());
  after(() => realAssets());

  const cfn = loadTemplate(TEMPLATE);

  function synth(audit: boolean) {
    const stack: Stack = newStack({ envAgnostic: true });
    new VendorGrantsProvider(stack, 'Provider', audit ? { auditSchedule: events.Schedule.rate(Duration.days(1)) } : {});
    return Template.fromStack(stack).toJSON();
  }

  test('the template parses with its short-form tags', () => {
    assert.equal(cfn.Resources.FunctionPolicy.Type, 'AWS::IAM::RolePolicy');
    assert.deepEqual(cfn.Resources.LockTable.Properties.TimeToLiveSpecification, { AttributeName: 'ExpiresAt', Enabled: true });
    assert.deepEqual(cfn.Resources.Function.Properties.Role, { 'Fn::GetAtt': ['FunctionRole', 'Arn'] });
    assert.deepEqual(cfn.Resources.FunctionPolicy.Properties.RoleName, { Ref: 'FunctionRole' });
    assert.ok(cfn.Conditions.AnyBucket['Fn::Equals']);
  });

  test('function policy: same Sids, actions, effects and conditions', () => {
    const template = synth(false);
    const policy = synthesizedPolicy(template, FUNCTION_POLICY_NAME);
    assert.equal(cfn.Resources.FunctionPolicy.Properties.PolicyName, FUNCTION_POLICY_NAME);
    assertSameStatements(
      'FunctionPolicy',
      bySid(cfn.Resources.FunctionPolicy.Properties.PolicyDocument),
      bySid(policy.PolicyDocument),
    );
  });

  test('audit policy: same Sids, actions, effects and conditions, only with a schedule', () => {
    const without = synth(false);
    assert.equal(resourcesOfType(without, 'AWS::IAM::RolePolicy').length, 1);
    assert.equal(resourcesOfType(without, 'AWS::Events::Rule').length, 0);

    const template = synth(true);
    const policy = synthesizedPolicy(template, AUDIT_POLICY_NAME);
    assert.equal(cfn.Resources.AuditPolicy.Properties.PolicyName, AUDIT_POLICY_NAME);
    assert.equal(cfn.Resources.AuditPolicy.Condition, 'HasAuditSchedule');
    assertSameStatements('AuditPolicy', bySid(cfn.Resources.AuditPolicy.Properties.PolicyDocument), bySid(policy.PolicyDocument));
  });

  test('the role has no other permissions than these policies', () => {
    const template = synth(true);
    assert.equal(resourcesOfType(template, 'AWS::IAM::Policy').length, 0, 'no AWS::IAM::Policy (e.g. a DefaultPolicy)');
    assert.equal(resourcesOfType(template, 'AWS::IAM::ManagedPolicy').length, 0);
    assert.equal(resourcesOfType(template, 'AWS::IAM::RolePolicy').length, 2);
    const roles = resourcesOfType(template, 'AWS::IAM::Role');
    assert.equal(roles.length, 1);
    const role = roles[0][1].Properties;
    assert.equal(role.ManagedPolicyArns, undefined);
    assert.equal(role.Policies, undefined);
    assert.deepEqual(role.AssumeRolePolicyDocument.Statement, cfn.Resources.FunctionRole.Properties.AssumeRolePolicyDocument.Statement);
  });

  test('the function is configured as in the template', () => {
    const template = synth(false);
    const fns = resourcesOfType(template, 'AWS::Lambda::Function');
    assert.equal(fns.length, 1);
    const got = fns[0][1].Properties;
    const want = cfn.Resources.Function.Properties;
    for (const key of ['Runtime', 'Handler', 'Timeout', 'MemorySize', 'Description']) {
      assert.deepEqual(got[key], want[key], key);
    }
    assert.deepEqual(Object.keys(got.Environment.Variables).sort(), Object.keys(want.Environment.Variables).sort());
    assert.ok(got.LoggingConfig.LogGroup.Ref);
    const permissions = resourcesOfType(template, 'AWS::Lambda::Permission');
    assert.equal(permissions.length, 1);
    const want2 = cfn.Resources.CloudFormationInvokePermission.Properties;
    assert.equal(permissions[0][1].Properties.Principal, want2.Principal);
    assert.equal(permissions[0][1].Properties.Action, want2.Action);
    assert.deepEqual(permissions[0][1].Properties.SourceAccount, want2.SourceAccount);
  });
});
