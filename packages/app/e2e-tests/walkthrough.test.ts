import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { test, expect, signInAsGuest } from './fixtures';

/*
 * The README's demo walk-through, step by step, against a fresh
 * ./scripts/start.sh (scripts/test.sh starts it for this project, and
 * waits until its simulated CI has made the history). Every command the
 * test runs and every button it presses is read from, or checked against,
 * the README's walk-through section, so that the two cannot drift apart.
 */

const ROOT = path.resolve(__dirname, '../../..');
const README = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
const WALKTHROUGH = README.slice(
  README.indexOf('<!-- walkthrough:start'),
  README.indexOf('<!-- walkthrough:end -->'),
);

/** The README's shell commands of the walk-through, in order. */
const COMMANDS = [
  ...WALKTHROUGH.matchAll(/^\s*(scripts\/demo-ci\.sh .+)$/gm),
].map(m => m[1].trim());

/** Fails unless the walk-through says `text` (a button, a state), however wrapped. */
function says(text: string) {
  const words = (t: string) => t.replace(/\s+/g, ' ');
  expect(
    words(WALKTHROUGH),
    `the README's walk-through says ${text}`,
  ).toContain(words(text));
}

/** Runs the README's `n`-th command as a person would, from the repository. */
async function run(n: number) {
  const [script, ...args] = COMMANDS[n].split(/\s+/);
  return promisify(execFile)(path.join(ROOT, script), args, { cwd: ROOT });
}

test("the README's demo walk-through: promote, CI asks for production, the guest approves, roll back, a bad release", async ({
  page,
}, testInfo) => {
  // Staging soaks a minute before production; production migrates.
  test.setTimeout(600_000);
  expect(COMMANDS).toEqual([
    'scripts/demo-ci.sh promote 1.2.1 production',
    'scripts/demo-ci.sh release 1.3.0 unhealthy',
  ]);

  // 1. The tab, with the history the simulated CI made.
  says(
    'press **Enter**, open **payments-api** and its\n   **Environments** tab',
  );
  await signInAsGuest(page);
  await page.getByRole('link', { name: 'payments-api' }).first().click();
  await page.getByRole('link', { name: 'Environments', exact: true }).click();
  const history = page.getByRole('table', { name: 'Promotion history' });
  for (const version of ['1.1.0', '1.2.0-unhealthy', '1.2.1']) {
    says(`**${version}**`);
    await expect(history).toContainText(version);
  }
  await expect(
    history.getByRole('row').filter({ hasText: '1.2.0-unhealthy' }),
  ).toContainText('rolled-back');
  const development = page.getByTestId('stage-development');
  const staging = page.getByTestId('stage-staging');
  const production = page.getByTestId('stage-production');
  await expect(development).toContainText('Live: 1.2.1');
  await expect(staging).toContainText('Live: 1.1.0');
  await page.screenshot({
    path: testInfo.outputPath('walkthrough-1-first-open.png'),
    fullPage: true,
  });

  // 2. Promote 1.2.1 to staging from the card.
  says('**Promote 1.2.1 to Staging**');
  const promote = page.getByRole('button', {
    name: 'Promote 1.2.1 to Staging',
  });
  await expect(promote).toBeEnabled();
  await promote.click();
  says('then\n   **Promote** in the dialog');
  await page
    .getByRole('dialog')
    .getByRole('button', { name: 'Promote', exact: true })
    .click();
  says('`Last promotion: 1.2.1 succeeded`');
  await expect(staging).toContainText('Last promotion: 1.2.1 succeeded', {
    timeout: 180_000,
  });

  // 3. CI asks for production: 409 until staging has soaked, run again.
  await expect(async () => {
    const { stdout } = await run(0);
    expect(stdout).toContain('Asked for 1.2.1 in production');
  }).toPass({ timeout: 150_000, intervals: [5_000] });
  says('awaits approval');
  await expect(production).toContainText('Promoting 1.2.1: awaiting-approval', {
    timeout: 60_000,
  });

  // 4. The guest approves.
  says('**Approve 1.2.1 to Production**, then **Approve**');
  await page
    .getByRole('button', { name: 'Approve 1.2.1 to Production' })
    .click();
  await page
    .getByRole('dialog')
    .getByRole('button', { name: 'Approve', exact: true })
    .click();
  await expect(production).toContainText('Last promotion: 1.2.1 succeeded', {
    timeout: 180_000,
  });
  await expect(production).toContainText('Live: 1.2.1');
  await page.screenshot({
    path: testInfo.outputPath('walkthrough-4-approved.png'),
    fullPage: true,
  });

  // 5. Roll staging back to what ran before.
  says('on the Staging card click **Roll back**, keep the release it offers');
  await page.getByRole('button', { name: 'Roll back Staging' }).click();
  await page
    .getByRole('dialog')
    .getByRole('button', { name: 'Roll back', exact: true })
    .click();
  says('Staging runs **1.1.0** again');
  await expect(staging).toContainText('Live: 1.1.0', { timeout: 120_000 });
  await expect(
    history.getByRole('row').filter({ hasText: 'rollback' }).first(),
  ).toContainText('staging');

  // 6. A release that goes bad by itself is rolled back in development.
  await run(1);
  await expect(
    history.getByRole('row').filter({ hasText: '1.3.0-unhealthy' }),
  ).toContainText('rolled-back', { timeout: 120_000 });
  says("the\n   History's **Details** say why");
  await page
    .getByRole('button', {
      name: 'Details of promotion 1.3.0-unhealthy to development',
    })
    .click();
  await expect(page.getByRole('dialog')).toContainText(
    /smoke: GET \/healthz failed: answered 503/,
  );
  await page.screenshot({
    path: testInfo.outputPath('walkthrough-6-rolled-back.png'),
    fullPage: true,
  });
});
