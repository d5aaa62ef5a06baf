// @peculiar/x509 finds its algorithm implementations through tsyringe, which needs the Reflect
// metadata API: load it before '@peculiar/x509'.
import 'reflect-metadata';
