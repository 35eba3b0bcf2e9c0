-- The users table. Emails are unique case-insensitively through a stored lower-case copy
-- with a binary collation (a *_ci collation would also equate accents and trailing spaces).
CREATE TABLE users (
    id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    name VARCHAR(100) NOT NULL,
    email VARCHAR(254) NOT NULL,
    email_key VARCHAR(254) COLLATE utf8mb4_bin AS (LOWER(email)) STORED,
    created_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6) NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY users_email_key (email_key)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
