// Stylesheets imported for their effect: esbuild bundles them into assets/app.css.
declare module '*.css';
