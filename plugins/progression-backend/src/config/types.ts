/*
 * The shapes of the progression config section, read by
 * readProgressionConfig.ts. A leaf: it
imports no reader, so gates and the
 * cluster code can use these types without importing each other.
 */
import type {
  ClusterConfig,
  StageConfig,
} from '@progression-io/backstage-plugin-progression-node';
import type { PrometheusConfig } from '../prometheus/PrometheusClient';
import type { PromotionWindow } from '../windows/promotionWindows';

export type {
  ApprovalConfig,
  ClusterConfig,
  FlagsConfig,
  StageConfig,
  StageLocation,
} from '@progression-io/backstage-plugin-progression-node';

/** The PromQL templates of the Environments tab's charts. */
export interface ChartQueries {
  requestRate: string;
  errorRate: string;
  p95: string;
}

/**
 * When a stage may receive promotions: its windows and the pipeline's,
 * the alerts that freeze it, and whether on-demand rollbacks may enter it
 * while it is closed.
 */
export interface StageWindowPolicy {
  windows: PromotionWindow[];
  /** Alert names and selectors on ALERTS; any firing closes the stage. */
  freezeOnAlerts: string[];
  rollbacksWhenClosed: 'allow' | 'deny';
}

export interface PipelineConfig {
  name: string;
  title: string;
  description?: string;
  stages: StageConfig[];
  /** The charts' queries; placeholders as in metric gates, except version. */
  charts: ChartQueries;
  /**
   * Each stage's promotion windows and freezes, by stage name; a stage
   * without any is always open.
   */
  windows: Map<string, StageWindowPolicy>;
}

/** One `type: gke` locator of the Kubernetes plugin, as it reads it. */
export interface GkeLocator {
  projectId: string;
  /** `-` for every region. */
  region: string;
  authProvider: string;
  skipTLSVerify: boolean;
  matchingResourceLabels: Array<{ key: string; value: string }>;
  endpointType: 'public' | 'dns';
}

export interface ProgressionConfig {
  /**
   * The clusters by name. With `clustersFromCatalog`, the catalog's
   * clusters are added (and kept up to date) while the backend runs.
   */
  clusters: Map<string, ClusterConfig>;
  /**
   * The Kubernetes plugin's `catalog` locator is configured: stages may
   * name clusters the catalog holds, read while the backend runs.
   */
  clustersFromCatalog: boolean;
  /** The Kubernetes plugin's `gke` locators, whose clusters stages may name. */
  gkeLocators: GkeLocator[];
  pipelines: Map<string, PipelineConfig>;
  worker: {
    heartbeatMs: number;
    staleMs: number;
    /** How a step that failed is retried: capped exponential backoff within a budget. */
    retry: { initialDelayMs: number; maxDelayMs: number; budgetMs: number };
    /** A step that runs longer is stopped and counts as a failed attempt. */
    stepTimeoutMs: number;
    /** This replica's name across restarts (its orphaned claims are its own). */
    replicaId?: string;
  };
  /**
   * How long ended promotions are kept, and how many of every entity and
   * stage are kept whatever their age.
   */
  retention: { keepForMs: number; keepLast: number };
  /** How long the read routes reuse a reader's catalog lookup of an entity. */
  entityCacheTtlMs: number;
  /** Where metric gates and charts read from; absent when not configured. */
  prometheus?: PrometheusConfig;
  /**
   * Whether approvers and owners are told through Backstage's
   * notifications service (docs/notifications.md).
   */
  notifications: { enabled: boolean };
}
