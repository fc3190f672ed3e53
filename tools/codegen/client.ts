// A small client written against the generated types, as a frontend would: every operation's
// variables and result are typed from api/schema.graphql, and `tsc --strict` checks this file
// (check.sh). Nothing here runs in CI; it only has to type-check.
import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import { print } from 'graphql';

import {
  CreditOrdersDocument,
  DrawDocument,
  RafflePageDocument,
  RefetchDocument,
  TaskStatusDocument,
  type CreditOrdersQuery,
  type RefetchQuery,
  type SkuCardFragment,
  type TaskState,
  type TaskStatusSubscription,
  type TaskStatusSubscriptionVariables,
} from './generated/graphql';

/** The media type of GraphQL over HTTP; request errors then answer 4xx. */
const MEDIA_TYPE = 'application/graphql-response+json';

interface GraphQLError {
  message: string;
  extensions?: { code?: string };
}

interface GraphQLResponse<T> {
  data?: T | null;
  errors?: GraphQLError[];
}

/** An answer with errors; `codes` are their `extensions.code` (docs/ERRORS.md). */
export class GraphQLRequestError extends Error {
  readonly codes: string[];

  constructor(errors: readonly GraphQLError[]) {
    super(errors.map((e) => e.message).join('; ') || 'no data');
    this.codes = errors.map((e) => e.extensions?.code ?? 'UNKNOWN');
  }
}

/** Runs one typed operation over `POST /graphql`. */
export async function request<TResult, TVariables extends Record<string, unknown>>(
  url: string,
  token: string,
  document: TypedDocumentNode<TResult, TVariables>,
  variables: TVariables,
): Promise<TResult> {
  const response = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: MEDIA_TYPE,
      authorization: `Bearer ${token}`,
    },
    body: JSON.stringify({ query: print(document), variables }),
  });
  const body = (await response.json()) as GraphQLResponse<TResult>;
  if (body.errors?.length || body.data == null) {
    throw new GraphQLRequestError(body.errors ?? []);
  }
  return body.data;
}

/** `DateTime` is an RFC 3339 string in UTC (`2026-11-30T15:24:46.123Z`). */
export function instant(value: string): Date {
  return new Date(value);
}

/** `Decimal` is an exact decimal string: compare it without going through a float. */
export function decimalCents(value: string): bigint {
  const [whole = '0', fraction = ''] = value.replace(/^\+/, '').split('.');
  const negative = whole.startsWith('-');
  const cents = BigInt(whole.replace('-', '') || '0') * 100n + BigInt((fraction + '00').slice(0, 2));
  return negative ? -cents : cents;
}

/** A draw, and the message id to follow its award by (`taskStatus`, `task`, `node`). */
export async function draw(url: string, token: string, activityId: string) {
  const { draw } = await request(url, token, DrawDocument, { activityId });
  const label = draw.awardIndex === null ? draw.awardTitle : `#${draw.awardIndex} ${draw.awardTitle}`;
  return { label, orderId: draw.orderId, messageId: draw.messageId };
}

/** The raffle page: the packages the user can afford with their credits. */
export async function affordablePackages(url: string, token: string, activityId: string): Promise<SkuCardFragment[]> {
  const { rafflePage } = await request(url, token, RafflePageDocument, { activityId });
  const credits = decimalCents(rafflePage.creditAccount.availableAmount);
  return rafflePage.skuProducts.filter((p) => p.stockCountSurplus > 0 && decimalCents(p.productAmount) <= credits);
}

type CreditOrder = CreditOrdersQuery['creditOrders']['edges'][number]['node'];

/** Every credit order, page by page (a connection: `first` / `after` / `pageInfo`). */
export async function allCreditOrders(url: string, token: string): Promise<CreditOrder[]> {
  const orders: CreditOrder[] = [];
  let after: string | null = null;
  for (;;) {
    const page: CreditOrdersQuery = await request(url, token, CreditOrdersDocument, { first: 100, after });
    orders.push(...page.creditOrders.edges.map((e) => e.node));
    if (!page.creditOrders.pageInfo.hasNextPage) return orders;
    after = page.creditOrders.pageInfo.endCursor;
  }
}

/** What a refetched node says, by its type (the union is exhaustive). */
export function describe(node: RefetchQuery['node']): string {
  if (node === null) return 'gone';
  switch (node.__typename) {
    case 'Strategy':
      return `strategy ${node.strategyId}: ${node.awards.reduce((n, a) => n + a.awardCountSurplus, 0)} awards left`;
    case 'SkuProduct':
      return `package ${node.id}: ${node.stockCountSurplus} left`;
    case 'Task':
      return `event ${node.messageId} ${node.state} after ${node.attempts} attempts (${instant(node.updatedAt).toISOString()})`;
    case 'Stage':
      return `stage ${node.id}`;
    default: {
      const unknown: never = node;
      return String(unknown);
    }
  }
}

/** Refetches any object the client holds by its global id. */
export async function refetch(url: string, token: string, id: string): Promise<string> {
  const { node } = await request(url, token, RefetchDocument, { id });
  return describe(node);
}

/** The `subscribe` message payload of graphql-transport-ws for `taskStatus`. */
export function taskStatusPayload(variables: TaskStatusSubscriptionVariables): { query: string; variables: TaskStatusSubscriptionVariables } {
  return { query: print(TaskStatusDocument), variables };
}

/** Whether an event of `taskStatus` ends its message's life. */
export function isFinal(event: TaskStatusSubscription): boolean {
  const final: readonly TaskState[] = ['DELIVERED', 'DEAD'];
  return final.includes(event.taskStatus.state);
}
