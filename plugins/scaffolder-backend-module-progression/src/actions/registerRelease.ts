import { AuthService, DiscoveryService } from '@backstage/backend-plugin-api';
import { stringifyEntityRef } from '@backstage/catalog-model';
import { InputError } from '@backstage/errors';
import { createTemplateAction } from '@backstage/plugin-scaffolder-node';
import { examples } from './registerRelease.examples';
import {
  COMMIT_PATTERN,
  IMAGE_PATTERN,
  ProgressionClient,
  checkVersion,
  parseEntityRefInput,
} from './progressionClient';

function checkRelease(input: {
  image: string;
  commit?: string;
  url?: string;
}): void {
  if (input.image.length > 512 || !IMAGE_PATTERN.test(input.image)) {
    throw new InputError(
      `image '${input.image}' is not an image reference such as registry.example.com/payments-api:1.4.2`,
    );
  }
  if (input.commit !== undefined && !COMMIT_PATTERN.test(input.commit)) {
    throw new InputError(
      `commit '${input.commit}' is not a commit hash: 7 to 64 lowercase hex digits`,
    );
  }
  if (input.url !== undefined) {
    let url: URL | undefined;
    try {
      url = new URL(input.url);
    } catch {
      url = undefined;
    }
    if (!url || !['http:', 'https:'].includes(url.protocol)) {
      throw new InputError(`url '${input.url}' is not an http or https URL`);
    }
  }
}

/**
 * `progression:release:register`: registers a release (a version and its
 * image) of an entity with Progression, as the user who runs the task.
 *
 * @public
 */
export function createRegisterReleaseAction(options: {
  discovery: DiscoveryService;
  auth: AuthService;
}) {
  const { discovery, auth } = options;
  return createTemplateAction({
    id: 'progression:release:register',
    description:
      'Registers a release (a version and its container image) of an entity with Progression, on behalf of the user running the task. ' +
      'Registering the same version and image again returns the existing release; the same version with another image fails (releases are immutable). ' +
      "Where the pipeline's first stage has autoPromote, its promotion starts by itself.",
    examples,
    supportsDryRun: true,
    schema: {
      input: {
        entityRef: z =>
          z
            .string()
            .min(1)
            .describe(
              'The entity the release belongs to, for example component:default/payments-api (kind defaults to component, namespace to default)',
            ),
        version: z =>
          z
            .string()
            .min(1)
            .describe(
              "The release version, for example 1.4.2: letters, digits and '. _ + -'",
            ),
        image: z =>
          z
            .string()
            .min(1)
            .describe(
              'The container image reference, for example registry.example.com/payments-api:1.4.2 (ideally with a digest)',
            ),
        commit: z =>
          z
            .string()
            .optional()
            .describe('The commit the release was built from (hex hash)'),
        url: z =>
          z
            .string()
            .optional()
            .describe("The build's http(s) URL, shown beside the release"),
      },
      output: {
        releaseId: z =>
          z.string().describe('The release id ("dry-run" in a dry run)'),
        version: z => z.string().describe('The registered version'),
        created: z =>
          z
            .boolean()
            .describe(
              'True when the release is new; false when the same version and image were registered before',
            ),
      },
    },
    async handler(ctx) {
      const ref = parseEntityRefInput(ctx.input.entityRef);
      const entityRef = stringifyEntityRef(ref);
      const version = ctx.input.version.trim();
      const image = ctx.input.image.trim();
      const commit = ctx.input.commit?.trim() || undefined;
      const url = ctx.input.url?.trim() || undefined;
      checkVersion(version);
      checkRelease({ image, commit, url });

      if (ctx.isDryRun) {
        ctx.logger.info(
          `Dry run: would register release ${version} (${image}${
            commit ? `, commit ${commit}` : ''
          }) of ${entityRef} with Progression`,
        );
        ctx.output('releaseId', 'dry-run');
        ctx.output('version', version);
        ctx.output('created', true);
        return;
      }

      const client = new ProgressionClient({
        discovery,
        auth,
        credentials: await ctx.getInitiatorCredentials(),
        signal: ctx.signal,
      });
      const { release, created } = await client.registerRelease(ref, {
        version,
        image,
        ...(commit && { commit }),
        ...(url && { url }),
      });
      ctx.logger.info(
        created
          ? `Registered release ${release.version} (${release.image}) of ${entityRef}`
          : `Release ${release.version} (${release.image}) of ${entityRef} was already registered by ${release.createdBy} at ${release.createdAt}`,
      );
      ctx.output('releaseId', release.id);
      ctx.output('version', release.version);
      ctx.output('created', created);
    },
  });
}
