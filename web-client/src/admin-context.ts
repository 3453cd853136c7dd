// What the sections of the administration pages share: who is logged in, the register of sites
// and the people, loaded once and again after a section changes them.

import type { Person, Site } from './admin-types';

export interface AdminData {
  me: Person;
  sites: Site[];
  people: Person[];
}

export interface Context {
  readonly data: AdminData;
  /** Reads the sites again and renders every section; false when that failed (status shown). */
  reloadSites(): Promise<boolean>;
  /** Reads the people again and renders every section. */
  reloadPeople(): Promise<boolean>;
}

/** One tab's content. */
export interface Section {
  /** Draws it again from the shared data, in the current language. */
  render(): void;
  /** Its tab was opened. */
  shown?(): void;
}

/** A site as a choice in a list: `Xã Một (X001)`. */
export function siteLabel(site: Site): string {
  return `${site.name} (${site.code})`;
}
