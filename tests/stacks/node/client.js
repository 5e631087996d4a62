// node's `soap` package as a leverancier's zaaksysteem uses it: the published WSDLs fetched from
// the running adapter (?wsdl, unmodified) over mutual TLS with the organisation's PKCS#12, then
// the scenario of tests/test_soap_stacks.py. Reads the scenario as JSON on stdin and prints what
// the stack returned as JSON on stdout, in the shape every stack's client prints.
'use strict';

const fs = require('fs');
const https = require('https');
const soap = require('soap');

const WSA = 'http://www.w3.org/2005/08/addressing';

function tls(client) {
  return {
    pfx: fs.readFileSync(client.p12),
    passphrase: client.password,
    ca: fs.readFileSync(client.root),
  };
}

async function open(wsdl, client) {
  const options = tls(client);
  const soapClient = await soap.createClientAsync(wsdl, {
    wsdl_options: { httpsAgent: new https.Agent(options) },
  });
  soapClient.setSecurity(new soap.ClientSSLSecurityPFX(options.pfx, options.passphrase, { ca: options.ca }));
  return soapClient;
}

// node-soap has no WS-Addressing of its own: its users add the headers by hand.
function addressing(soapClient, to, action) {
  soapClient.clearSoapHeaders();
  soapClient.addSoapHeader(`<wsa:To xmlns:wsa="${WSA}">${to}</wsa:To>`);
  soapClient.addSoapHeader(`<wsa:Action xmlns:wsa="${WSA}">${action}</wsa:Action>`);
  soapClient.addSoapHeader(
    `<wsa:MessageID xmlns:wsa="${WSA}">urn:uuid:${require('crypto').randomUUID()}</wsa:MessageID>`,
  );
}

function fault(error) {
  const body = error.root && error.root.Envelope && error.root.Envelope.Body;
  if (!body || !body.Fault) {
    throw error;
  }
  const detail = body.Fault.detail || {};
  const holder = detail.ApplicationFault || detail.DependentServiceFault || {};
  return {
    faultcode: body.Fault.faultcode,
    faultstring: body.Fault.faultstring,
    code: holder.Code === undefined ? null : holder.Code,
    message: holder.Message === undefined ? null : holder.Message,
  };
}

async function faultOf(call) {
  try {
    await call();
  } catch (error) {
    return fault(error);
  }
  throw new Error('a fault was expected');
}

function aanvraag(leverancier, keys) {
  return {
    validateAbonnementenAanvraag: {
      berichtleverancierCode: leverancier,
      berichtTypeCode: 'BESLUIT',
      klanten: { Klant: keys.map((key) => ({ Key: key, Rol: 'Burger' })) },
    },
  };
}

function abonnementen(result) {
  const list = result.ValidateAbonnementenResult.Abonnement;
  return (Array.isArray(list) ? list : [list]).map((a) => [a.klant.Key, a.isBerichtSturen]);
}

async function main() {
  const s = JSON.parse(fs.readFileSync(0, 'utf8'));
  const out = {};

  const validatie = await open(s.abonnementen_wsdl, s.client);
  const [validated] = await validatie.ValidateAbonnementenAsync(aanvraag(s.leverancier, s.bsns));
  out.abonnementen = abonnementen(validated);
  out.abonnementen_fault = await faultOf(() =>
    validatie.ValidateAbonnementenAsync(aanvraag(s.other_leverancier, s.bsns.slice(0, 1))),
  );

  const strikt = await open(s.abonnementen_wsdl, s.strikt_client);
  addressing(strikt, s.abonnementen_endpoint, s.validate_action);
  const [validated2wbe] = await strikt.ValidateAbonnementenAsync(aanvraag(s.strikt, s.bsns));
  out.abonnementen_2w_be = abonnementen(validated2wbe);
  addressing(strikt, s.abonnementen_endpoint, s.validate_action);
  out.abonnementen_2w_be_fault = await faultOf(() =>
    strikt.ValidateAbonnementenAsync(aanvraag(s.leverancier, s.bsns.slice(0, 1))),
  );

  const zaken = await open(s.lopende_zaken_wsdl, s.client);
  const z = s.zaak;
  const [aangeleverd] = await zaken.ZaakAanleverenAsync({
    zaak: {
      identificatie: z.identificatie,
      omschrijving: z.omschrijving,
      startdatum: z.startdatum,
      initiator: { bsn: z.bsn },
      status: { omschrijving: z.eerste_status, datumStatusGezet: z.eerste_datum },
    },
  });
  out.zaak_aanleveren = aangeleverd.resultaat;
  const update = {
    identificatie: z.identificatie,
    status: { omschrijving: z.tweede_status, datumStatusGezet: z.tweede_datum },
  };
  out.status_aanleveren = (await zaken.StatusAanleverenAsync(update))[0].resultaat;
  out.status_herhaald = (await zaken.StatusAanleverenAsync(update))[0].resultaat;
  const [afgesloten] = await zaken.ZaakAfsluitenAsync({
    identificatie: z.identificatie,
    einddatum: z.einddatum,
    resultaatOmschrijving: z.resultaat,
  });
  out.zaak_afsluiten = afgesloten.resultaat;
  const [opgevraagd] = await zaken.ZakenOpvragenAsync({ bsn: z.bsn });
  const lijst = Array.isArray(opgevraagd.zaak) ? opgevraagd.zaak : [opgevraagd.zaak];
  const mine = lijst.find((found) => found.identificatie === z.identificatie);
  out.zaak = {
    status: mine.status.omschrijving,
    datumStatusGezet: String(mine.status.datumStatusGezet),
    einddatum: String(mine.einddatum),
    resultaat: mine.resultaat,
    historie: mine.statushistorie.status.map((st) => st.omschrijving),
  };
  out.zaak_fault = await faultOf(() =>
    zaken.StatusAanleverenAsync({ identificatie: s.unknown_zaak, status: update.status }),
  );
  process.stdout.write(JSON.stringify(out));
}

main().catch((error) => {
  process.stderr.write(`${error.stack || error}\n`);
  if (error.body) {
    process.stderr.write(`${error.body}\n`);
  }
  process.exit(1);
});
