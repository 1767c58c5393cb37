//! The table definition, shared by the local stack, the tests and (mirrored) template.yaml.

use super::keys::{GSI1, GSI1PK, GSI1SK, PK, SK};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TableStatus,
};
use aws_sdk_dynamodb::Client;
use std::time::Duration;

fn attr(name: &str) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .expect("name and type set")
}

fn key(name: &str, kind: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .expect("name and type set")
}

/// Creates the table (on-demand, GSI1) if it does not exist and waits until it is active.
pub async fn ensure_table(db: &Client, table: &str) -> Result<(), aws_sdk_dynamodb::Error> {
    let created = db
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr(PK))
        .attribute_definitions(attr(SK))
        .attribute_definitions(attr(GSI1PK))
        .attribute_definitions(attr(GSI1SK))
        .key_schema(key(PK, KeyType::Hash))
        .key_schema(key(SK, KeyType::Range))
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(GSI1)
                .key_schema(key(GSI1PK, KeyType::Hash))
                .key_schema(key(GSI1SK, KeyType::Range))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
                .expect("index fields set"),
        )
        .send()
        .await;
    if let Err(err) = created {
        let err = aws_sdk_dynamodb::Error::from(err);
        if !matches!(err, aws_sdk_dynamodb::Error::ResourceInUseException(_)) {
            return Err(err);
        }
    }
    for _ in 0..100 {
        let described = db.describe_table().table_name(table).send().await?;
        if described.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}
