import {
  DatabaseService,
  resolvePackagePath,
} from '@backstage/backend-plugin-api';
import { Knex } from 'knex';
// The build inlines the package's own name: no name is written here twice.
import { name as packageName } from '../../package.json';

const migrationsDir = resolvePackagePath(packageName, 'migrations');

/** The knex migration table of this plugin, apart from other plugins'. */
export const MIGRATIONS_TABLE = 'progression_knex_migrations';

/** Brings the schema up to date. */
export async function applyDatabaseMigrations(knex: Knex): Promise<void> {
  await knex.migrate.latest({
    directory: migrationsDir,
    tableName: MIGRATIONS_TABLE,
  });
}

/**
 * Gets the plugin's database client, migrated unless the operator set
 * `backend.database.migrations.skip` (for example a read-only replica).
 */
export async function getMigratedClient(
  database: DatabaseService,
): Promise<Knex> {
  const client = await database.getClient();
  if (!database.migrations?.skip) {
    await applyDatabaseMigrations(client);
  }
  return client;
}
