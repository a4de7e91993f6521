const knex = require('knex')({client:'better-sqlite3',connection:':memory:',useNullAsDefault:true});
(async()=>{
 await knex.migrate.latest({directory: __dirname + '/migrations'});
})().catch(e=>console.error(e));
