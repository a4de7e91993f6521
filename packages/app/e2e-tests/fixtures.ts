import {
  test as base,
  expect,
  APIRequestContext,
  Page,
} from '@playwright/test';
import fs from 'node:fs';
import path from 'node:path';

/*
 * The end-to-end tests' `test`: Playwright's, plus a check that runs in
 * every test: the plugin's own components printed no React warning (a
 * missing key, a <div> inside a <p>, …) in the browser console.
 *
 * React's development build prints each warning with the component stack
 * that caused it ("at StageCard (http://…)"). A warning is the plugin's when
 * that stack names one of the plugin's components: every capitalised
 * function of plugins/progression/src, read from the sources here so that
 * a new component is covered without editing this list.
 */

const PLUGIN_SRC = path.resolve(__dirname, '../../../plugins/progression/src');

function componentNames(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap(entry => {
    const file = path.join(dir, entry.name);
    if (entry.isDirectory()) return componentNames(file);
    if (!/\.tsx$/.test(entry.name) || /\.test\.tsx$/.test(entry.name)) {
      return [];
    }
    const source = fs.readFileSync(file, 'utf8');
    return [...source.matchAll(/function ([A-Z]\w+)\s*[(<]/g)].map(m => m[1]);
  });
}

const PLUGIN_COMPONENT = new RegExp(
  `\\bat (${[...new Set(componentNames(PLUGIN_SRC))].join('|')})\\b`,
);

/**
 * The plugin's components that only wrap another plugin's tree (the
 * Kubernetes plugin's tab, in KubernetesNamespaceFilter): a warning whose
 * nearest plugin component is one of these was raised in that other tree.
 */
const HOSTS_OF_OTHER_PLUGINS = ['KubernetesNamespaceFilter'];

/** Whether a console message is a React warning raised in the plugin. */
export function isPluginWarning(text: string): boolean {
  if (!/Warning:/.test(text)) return false;
  const nearest = PLUGIN_COMPONENT.exec(text)?.[1];
  return !!nearest && !HOSTS_OF_OTHER_PLUGINS.includes(nearest);
}

export const test = base.extend<{ pluginWarnings: string[] }>({
  pluginWarnings: [
    async ({ page }, use) => {
      const warnings: string[] = [];
      page.on('console', message => {
        if (message.type() !== 'warning' && message.type() !== 'error') {
          return;
        }
        const text = message.text();
        if (isPluginWarning(text)) warnings.push(text);
      });
      await use(warnings);
      expect(
        warnings,
        'React warnings from the plugin in the browser console',
      ).toEqual([]);
    },
    { auto: true },
  ],
});

export { expect };
export type { APIRequestContext, Locator, Page } from '@playwright/test';

/** CI's token: the demo's static external-access token (app-config). */
export const CI = { Authorization: 'Bearer progression-demo-ci-token' };
/** The demo backend's Progression API. */
export const api = 'http://localhost:7007/api/progression/v1';

/** Signs in as the demo's guest and waits for the catalog, the home page. */
export async function signInAsGuest(page: Page) {
  await page.goto('/');
  const enter = page.getByRole('button', { name: 'Enter' });
  await expect(enter).toBeVisible();
  await enter.click();
  await expect(
    page.getByRole('heading', { name: 'Progression demo Catalog' }),
  ).toBeVisible();
}

/**
 * Opens the guest's notifications filtered by `text`. A guest session the
 * app could not restore on this load (its refresh call failed while the
 * backend was busy) enters again.
 */
export async function openNotifications(page: Page, text: string) {
  await page.goto('/notifications');
  const enter = page.getByRole('button', { name: 'Enter' });
  const filter = page.getByPlaceholder('Filter');
  await expect(enter.or(filter)).toBeVisible();
  if (await enter.isVisible()) await enter.click();
  await filter.fill(text);
}

/**
 * Registers a release of payments-api as CI does (with `data`'s extra
 * fields) and waits until its promotion into development (autoPromote)
 * ended `state`: nothing of it is left running for the tests after it.
 */
export async function releaseToDevelopment(
  request: APIRequestContext,
  version: string,
  state: 'succeeded' | 'rolled-back',
  data: Record<string, string> = {},
) {
  const entity = `${api}/entities/component/default/payments-api`;
  const registered = await request.post(`${entity}/releases`, {
    headers: CI,
    data: { version, image: `registry.local/payments-api:${version}`, ...data },
  });
  expect([200, 201]).toContain(registered.status());
  await expect(async () => {
    const list = await (
      await request.get(`${entity}/promotions?stage=development&limit=1`, {
        headers: CI,
      })
    ).json();
    expect(list.items[0]).toMatchObject({ state, release: { version } });
  }).toPass({ timeout: 90_000 });
}
