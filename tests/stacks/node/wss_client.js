// node's `soap` package signing a request per Digikoppeling 2W-be-S with its own WSSecurityCert
// (xml-crypto underneath): ValidateAbonnementen through the published WSDL over mutual TLS,
// the WS-Addressing headers added by hand and signed with Body and Timestamp. Reads the
// scenario as JSON on stdin; prints the request it sent, the answer it got and what it read.
'use strict';

const fs = require('fs');
const https = require('https');
const crypto = require('crypto');
const soap = require('soap');

const WSA = 'http://www.w3.org/2005/08/addressing';
const EXC_C14N = 'http://www.w3.org/2001/10/xml-exc-c14n#';

async function main() {
  const s = JSON.parse(fs.readFileSync(0, 'utf8'));
  const agent = new https.Agent({
    pfx: fs.readFileSync(s.p12),
    passphrase: s.password,
    ca: fs.readFileSync(s.root),
  });
  const client = await soap.createClientAsync(s.wsdl, { wsdl_options: { httpsAgent: agent } });
  client.addSoapHeader(`<wsa:To xmlns:wsa="${WSA}">${s.to}</wsa:To>`);
  client.addSoapHeader(`<wsa:Action xmlns:wsa="${WSA}">${s.action}</wsa:Action>`);
  client.addSoapHeader(`<wsa:MessageID xmlns:wsa="${WSA}">urn:uuid:${crypto.randomUUID()}</wsa:MessageID>`);
  client.setSecurity(
    new soap.WSSecurityCert(fs.readFileSync(s.key), fs.readFileSync(s.certificate), '', {
      signatureAlgorithm: 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',
      digestAlgorithm: 'http://www.w3.org/2001/04/xmlenc#sha256',
      // Digikoppeling (WB007, BSP): exclusive c14n only, not xml-crypto's default
      // enveloped-signature transform before it.
      signatureTransformations: [EXC_C14N],
      additionalReferences: ['wsa:To', 'wsa:Action', 'wsa:MessageID'],
      signerOptions: { prefix: 'ds', idMode: 'wssecurity' },
    }),
  );
  const out = {};
  try {
    const [result] = await client.ValidateAbonnementenAsync(
      {
        validateAbonnementenAanvraag: {
          berichtleverancierCode: s.leverancier,
          berichtTypeCode: 'BESLUIT',
          klanten: { Klant: [{ Key: s.bsn, Rol: 'Burger' }] },
        },
      },
      { httpsAgent: agent },
    );
    const list = result.ValidateAbonnementenResult.Abonnement;
    out.abonnementen = (Array.isArray(list) ? list : [list]).map((a) => [a.klant.Key, a.isBerichtSturen]);
  } catch (error) {
    const body = error.root && error.root.Envelope && error.root.Envelope.Body;
    if (!body || !body.Fault) {
      throw error;
    }
    out.fault = { faultcode: body.Fault.faultcode, faultstring: body.Fault.faultstring };
  }
  out.request = client.lastRequest;
  out.response = client.lastResponse;
  process.stdout.write(JSON.stringify(out));
}

main().catch((error) => {
  process.stderr.write(`${error.stack || error}\n`);
  process.exit(1);
});
