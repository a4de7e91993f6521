import { defineConfig } from '@playwright/test';

/*
 * Browser end-to-end tests, run by scripts/test.sh against the demo it
 * starts (frontend :3000, backend :7007). The browser is Debian's Chromium,
 * driven through playwright-core: Playwright's own browser download cannot
 * be fetched on these machines.
 */
export default defineConfig({
  testDir: 'packages/app/e2e-tests',
  timeout: 120_000,
  expect: { timeout: 45_000 },
  forbidOnly: !!process.env.CI,
  retries: 0,
  workers: 1,
  reporter: [
    ['list'],
    ['html', { open: 'never', outputFolder: 'e2e-test-report' }],
    // scripts/test.sh counts the results from here.
    ...(process.env.PROGRESSION_E2E_JSON
      ? [['json', { outputFile: process.env.PROGRESSION_E2E_JSON }] as const]
      : []),
  ],
  outputDir: 'e2e-test-results',
  use: {
    baseURL: process.env.PLAYWRIGHT_URL ?? 'http://localhost:3000',
    actionTimeout: 30_000,
    screenshot: 'only-on-failure',
    trace: 'retain-on-failure',
    launchOptions: {
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
    },
  },
  projects: [
    // Against the demo scripts/test.sh starts for them (no history).
    { name: 'demo', testIgnore: /(walkthrough|windows)\.test\.ts$/ },
    // The README's walk-through, against a fresh ./scripts/start.sh (with
    // the history its simulated CI makes); scripts/test.sh runs it last.
    { name: 'walkthrough', testMatch: /walkthrough\.test\.ts$/ },
    // Against ./scripts/start.sh with a deny window on web-shop's
    // production (scripts/demo-window-config.sh); scripts/test.sh runs it
    // after the walk-through.
    { name: 'windows', testMatch: /windows\.test\.ts$/ },
  ],
});
