// gcp-metadata and google-auth-library (npm) on GCE's metadata server, for tests/clouds_sdk.rs.
// Pointed at the guard by their documented overrides: GCE_METADATA_HOST (GCE_METADATA_IP is read
// first, so the test sets both) and METADATA_SERVER_DETECTION=assume-present (no probe).
//
// Steps:
//   instance_id     gcpMetadata.instance('id')
//   project_id      gcpMetadata.project('project-id')
//   metadata_token  gcpMetadata.instance('service-accounts/default/token')
//   auth_client     new GoogleAuth({scopes}).getClient(): the Compute client, and the project
//   auth_token      its getAccessToken(): service-accounts/default/token?scopes=..
//   auth_id_token   getIdTokenClient(audience) and its ID token:
//                   service-accounts/default/identity?format=full&audience=..
'use strict';

const { need, version, Report } = require('./report.js');

const gcpMetadata = need('gcp-metadata');
const { GoogleAuth } = need('google-auth-library');

const AUDIENCE = 'https://service.example';
const SCOPES = ['https://www.googleapis.com/auth/cloud-platform'];

function claims(jwt) {
  const part = String(jwt).split('.')[1] || '';
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
}

async function main() {
  const report = new Report({
    'gcp-metadata': version('gcp-metadata'),
    'google-auth-library': version('google-auth-library'),
  });
  await report.step('instance_id', async () => String(await gcpMetadata.instance('id')));
  await report.step('project_id', () => gcpMetadata.project('project-id'));
  await report.step('metadata_token', async () => {
    const t = await gcpMetadata.instance('service-accounts/default/token');
    return { token: t.access_token, expires_in: t.expires_in, token_type: t.token_type };
  });
  const auth = new GoogleAuth({ scopes: SCOPES });
  await report.step('auth_client', async () => {
    const client = await auth.getClient();
    return { class: client.constructor.name, project: await auth.getProjectId() };
  });
  await report.step('auth_token', async () => ({ token: await auth.getAccessToken() }));
  await report.step('auth_id_token', async () => {
    const idClient = await auth.getIdTokenClient(AUDIENCE);
    const token = await idClient.idTokenProvider.fetchIdToken(AUDIENCE);
    return { token, claims: claims(token) };
  });
  report.done();
}

main();
