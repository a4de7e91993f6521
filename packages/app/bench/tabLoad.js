#!/usr/bin/env node
/* eslint-disable no-console */
/*
 * Benchmark of the Environments tab against the Overview tab of the same
 * entity, on the production build of the app (served by the backend at
 * BENCH_URL, default http://localhost:7007), in Debian's headless Chromium.
 * Run by scripts/bench-ui.sh, which builds the app and starts what it needs.
 * It prints figures; nothing here asserts on time.
 *
 * For each round, in a fresh browser context (cold cache), after signing
 * in as guest: the time from navigation until every stage card of
 * payments-api shows what runs there (Environments), and until the Overview
 * shows its About card and the "Where is my release" card with every
 * stage's version (Overview). Then the ratio of the medians (target ≤ 1.2),
 * and the size of the chunks that hold the plugin's code.
 */
const { chromium } = require('playwright-core');
const fs = require('node:fs');
const path = require('node:path');
const zlib = require('node:zlib');

const BASE = process.env.BENCH_URL ?? 'http://localhost:7007';
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const ENTITY = '/catalog/default/component/payments-api';

const median = xs => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};

async function signIn(page) {
  await page.goto(BASE);
  await page.getByRole('button', { name: 'Enter' }).click();
  await page
    .getByRole('heading', { name: 'Progression demo Catalog' })
    .waitFor();
}

async function environments(page) {
  const started = performance.now();
  await page.goto(`${BASE}${ENTITY}/environments`);
  await page.waitForFunction(
    () => {
      const cards = [...document.querySelectorAll('[data-testid^="stage-"]')];
      return (
        cards.length === 3 && cards.every(c => c.textContent.includes('Live:'))
      );
    },
    undefined,
    { timeout: 60_000, polling: 'raf' },
  );
  return performance.now() - started;
}

async function overview(page) {
  const started = performance.now();
  await page.goto(`${BASE}${ENTITY}`);
  await page.waitForFunction(
    () => {
      const about = [...document.querySelectorAll('h2,h3,h4,h5,span')].some(
        e => e.textContent === 'About',
      );
      const table = document.querySelector(
        'table[aria-label="Where is my release"]',
      );
      const rows = table ? [...table.querySelectorAll('tbody tr')] : [];
      return (
        about &&
        rows.length === 3 &&
        rows.every(r => /\d+\.\d+/.test(r.cells[1]?.textContent ?? ''))
      );
    },
    undefined,
    { timeout: 60_000, polling: 'raf' },
  );
  return performance.now() - started;
}

function pluginChunks() {
  const dir = path.resolve(__dirname, '../dist/static');
  if (!fs.existsSync(dir)) return [];
  const markers = ['Stages of pipeline', 'Where is my release', 'Gate results'];
  return fs
    .readdirSync(dir)
    .filter(f => f.endsWith('.js'))
    .map(f => ({ f, text: fs.readFileSync(path.join(dir, f)) }))
    .filter(({ text }) => markers.some(m => text.includes(m)))
    .map(({ f, text }) => ({
      file: f,
      bytes: text.length,
      gzip: zlib.gzipSync(text).length,
      holds: markers.filter(m => text.includes(m)),
    }));
}

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  const times = { environments: [], overview: [] };
  // One warm-up round each, not counted (the backend's first reads).
  for (let round = -1; round < ROUNDS; round++) {
    // Alternate the order so neither tab always goes first.
    const order =
      round % 2 === 0
        ? ['environments', 'overview']
        : ['overview', 'environments'];
    for (const tab of order) {
      const context = await browser.newContext();
      const page = await context.newPage();
      await signIn(page);
      const ms = await (tab === 'environments'
        ? environments(page)
        : overview(page));
      if (round >= 0) times[tab].push(ms);
      await context.close();
    }
  }
  await browser.close();

  const env = median(times.environments);
  const ov = median(times.overview);
  console.log(
    `\nTab load on the production build (${ROUNDS} rounds, cold cache each, headless Chromium; medians)`,
  );
  console.log(
    `  Environments tab, every stage card with its live version: ${env.toFixed(
      0,
    )} ms  (all: ${times.environments.map(t => t.toFixed(0)).join(', ')})`,
  );
  console.log(
    `  Overview tab, About and "Where is my release" filled:       ${ov.toFixed(
      0,
    )} ms  (all: ${times.overview.map(t => t.toFixed(0)).join(', ')})`,
  );
  console.log(
    `  ratio Environments / Overview: ${(env / ov).toFixed(2)} (target ≤ 1.2)`,
  );
  const chunks = pluginChunks();
  console.log(
    `\nChunks that hold the plugin's code (packages/app/dist/static):`,
  );
  if (!chunks.length) console.log('  none found (is the app built?)');
  for (const c of chunks) {
    console.log(
      `  ${c.file.padEnd(40)} ${(c.bytes / 1024)
        .toFixed(1)
        .padStart(8)} KiB  gzip ${(c.gzip / 1024)
        .toFixed(1)
        .padStart(7)} KiB  (${c.holds.join('; ')})`,
    );
  }
}

main().catch(e => {
  console.error(e);
  process.exit(1);
});
