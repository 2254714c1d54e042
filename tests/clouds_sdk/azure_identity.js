// @azure/identity (npm): ManagedIdentityCredential on Azure's IMDS, for tests/clouds_sdk.rs.
// Pointed at the guard by AZURE_POD_IDENTITY_AUTHORITY_HOST=http://HOST:PORT (IDENTITY_ENDPOINT,
// MSI_ENDPOINT, IMDS_ENDPOINT unset; the override also skips the probe). The token request is
// MSAL's: GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=.. with Metadata: true.
//
// Steps:
//   vault       getToken('https://vault.azure.net/.default')
//   management  getToken('https://management.azure.com/.default'): another resource
'use strict';

const { need, version, Report } = require('./report.js');

const { ManagedIdentityCredential } = need('@azure/identity');

async function main() {
  const report = new Report({
    '@azure/identity': version('@azure/identity'),
    '@azure/msal-node': version('@azure/msal-node'),
  });
  const credential = new ManagedIdentityCredential();
  for (const [name, scope] of [
    ['vault', 'https://vault.azure.net/.default'],
    ['management', 'https://management.azure.com/.default'],
  ]) {
    await report.step(name, async () => {
      const t = await credential.getToken(scope);
      return {
        token: t.token,
        expires_on: Math.floor(t.expiresOnTimestamp / 1000),
        expires_in: Math.floor((t.expiresOnTimestamp - Date.now()) / 1000),
      };
    });
  }
  report.done();
}

main();
