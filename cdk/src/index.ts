export { Access, GrantMode, ProviderLogLevel, Vendor } from './types';
export { VendorGrantsProvider, VendorGrantsProviderProps } from './provider';
export { VendorGrant, VendorGrantProps } from './grant';
