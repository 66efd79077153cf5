export { Access, GrantMode, ProviderLogLevel, Vendor } from './types';
export { VENDOR_GRANTS_VERSION, VendorGrantsProvider, VendorGrantsProviderProps } from './provider';
export { VendorGrant, VendorGrantProps } from './grant';
