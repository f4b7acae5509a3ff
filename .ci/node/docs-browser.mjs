// The /docs page as people use it, in a real headless browser (Debian's chromium, driven by
// puppeteer-core): open the sandbox's /docs/, Authorize with the sandbox token, "Try it out" on
// PUT /v1.0/me/photo/$value with the sandbox's sample JPEG as the file, Execute, and see the 200
// receipt on the page.
//
// NODE_EXTRA_CA_CERTS=<sandbox ca.pem> node .ci/node/docs-browser.mjs READY_FILE [SCREENSHOT_ON_FAILURE]
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import puppeteer from "puppeteer-core";

const ready = JSON.parse(readFileSync(process.argv[2], "utf8"));
const screenshot = process.argv[3];
const gateway = ready.gateway_url;
const profile = mkdtempSync(join(tmpdir(), "docs-browser-"));
const TIMEOUT = 20_000;

const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  // Without the background-networking flags, the closed network refuses Chromium's own connections.
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    `--user-data-dir=${profile}`,
  ],
});
let page;
try {
  page = await browser.newPage();
  page.setDefaultTimeout(TIMEOUT);
  const seen = [];
  page.on("response", (r) => {
    if (r.url().includes("/v1.0/")) seen.push(`${r.request().method()} ${r.status()}`);
  });

  await page.goto(`${gateway}/docs/`, { waitUntil: "networkidle0" });
  await page.waitForSelector(".swagger-ui .info .title");

  // Authorize: the bearer scheme's value field, then Authorize and Close in the modal.
  await page.click(".btn.authorize");
  const tokenInput = await page.waitForSelector(".modal-ux .auth-container input");
  await tokenInput.type(ready.token);
  await page.click(".modal-ux .auth-btn-wrapper .btn.modal-btn.authorize");
  await page.waitForSelector(".modal-ux .auth-btn-wrapper .btn-done");
  await page.click(".modal-ux .auth-btn-wrapper .btn-done");
  await page.waitForSelector(".modal-ux", { hidden: true });

  // PUT /v1.0/me/photo/$value (operationId replaceMyPhoto): expand, Try it out.
  const op = "#operations-photos-replaceMyPhoto";
  await page.click(`${op} .opblock-summary`);
  await page.waitForSelector(`${op} .try-out__btn`);
  await page.click(`${op} .try-out__btn`);

  // The body as multipart/form-data: one file part named `photo`, the sample JPEG.
  const select = await page.waitForSelector(`${op} .opblock-section-request-body select`);
  await select.select("multipart/form-data");
  const file = await page.waitForSelector(`${op} .opblock-section-request-body input[type=file]`);
  await file.uploadFile(ready.sample_file);

  await page.click(`${op} .execute`);
  const statusCell = await page.waitForSelector(
    `${op} .live-responses-table tbody .response-col_status`,
  );
  await page.waitForFunction(
    (el) => el.textContent.trim().length > 0,
    {},
    statusCell,
  );
  const status = (await statusCell.evaluate((el) => el.textContent)).trim();
  const body = await page.$eval(
    `${op} .live-responses-table tbody .response-col_description pre`,
    (el) => el.textContent,
  );
  console.log(`docs page: PUT via Swagger UI answered ${status}; requests seen: ${seen.join(", ")}`);
  if (status !== "200") throw new Error(`expected 200 on the page, saw ${status}: ${body}`);
  const receipt = JSON.parse(body);
  const sample = readFileSync(ready.sample_file);
  if (receipt.method !== "PUT" || receipt.target !== "/me/photo/$value" || !(receipt.bytes > 0)) {
    throw new Error(`not the receipt expected: ${body}`);
  }
  // And the Graph emulator got exactly those bytes.
  const recorded = await (await fetch(`${ready.graph_url}/_emulator/requests`)).json();
  const last = recorded.at(-1);
  if (!last || last.method !== "PUT" || last.sha256 !== receipt.sha256) {
    throw new Error(`the Graph emulator did not record the receipt's upload: ${JSON.stringify(last)}`);
  }
  console.log(
    `docs page: receipt on the page: ${receipt.method} ${receipt.target}, ${receipt.bytes} bytes (sample ${sample.length})`,
  );
} catch (e) {
  if (page && screenshot) await page.screenshot({ path: screenshot, fullPage: true }).catch(() => {});
  throw e;
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
